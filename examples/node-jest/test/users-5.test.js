require('./users-suite').usersSuite(5);
