// The suite every users-N.test.js file runs. The files run in parallel and
// each creates the same user: that only works if each file has a database
// (and a Redis) of its own.
import { describe, expect, test } from 'vitest';
import { createUser, getUser, countUsers } from '../src/users.js';
import { open } from './helpers.js';

export async function usersSuite(n) {
  const { db, cache } = await open();

  describe(`users (file ${n})`, () => {
    test('starts from the migrated, empty template', async () => {
      expect(await countUsers(db)).toBe(0);
    });

    test('creates alice, whose email is unique', async () => {
      const u = await createUser(db, { email: 'alice@example.com', name: `Alice ${n}` });
      expect(u.id).toBe(1);
      await expect(createUser(db, { email: 'alice@example.com', name: 'again' })).rejects.toMatchObject({ code: '23505' });
    });

    test('reads through the cache', async () => {
      const first = await getUser(db, cache, 1);
      expect(first).toMatchObject({ email: 'alice@example.com', name: `Alice ${n}`, cached: false });
      const second = await getUser(db, cache, 1);
      expect(second.cached).toBe(true);
      expect(await cache.dbSize()).toBe(1);
    });
  });
}
