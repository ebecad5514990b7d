require('./users-suite').usersSuite(6);
