require('./users-suite').usersSuite(3);
