require('./users-suite').usersSuite(1);
