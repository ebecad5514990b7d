require('./users-suite').usersSuite(2);
