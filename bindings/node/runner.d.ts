// dblease/vitest and dblease/jest are side-effect entries (setupFiles /
// setupFilesAfterEnv): they set process.env.DATABASE_URL (and REDIS_URL).
export {};
