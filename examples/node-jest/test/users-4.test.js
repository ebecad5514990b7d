require('./users-suite').usersSuite(4);
