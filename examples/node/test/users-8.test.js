import { usersSuite } from './users-suite.js';

await usersSuite(8);
