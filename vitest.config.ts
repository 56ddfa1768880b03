import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database copy (PGlite) or its own accounts (PostgreSQL);
    // two workers keep the two cores busy without starving the database.
    pool: 'forks',
    maxWorkers: 2,
  },
});
