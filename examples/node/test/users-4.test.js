// One of eight identical files that run in parallel: each creates the same
// user, which only works if each file has a database of its own.
import { describe, expect, test } from 'vitest';
import { createUser, getUser, countUsers } from '../src/users.js';
import { open } from './helpers.js';

const { db, cache } = await open();

describe('users (file 4)', () => {
  test('starts from the migrated, empty template', async () => {
    expect(await countUsers(db)).toBe(0);
  });

  test('creates alice, whose email is unique', async () => {
    const u = await createUser(db, { email: 'alice@example.com', name: 'Alice 4' });
    expect(u.id).toBe(1);
    await expect(createUser(db, { email: 'alice@example.com', name: 'again' })).rejects.toMatchObject({ code: '23505' });
  });

  test('reads through the cache', async () => {
    const first = await getUser(db, cache, 1);
    expect(first).toMatchObject({ email: 'alice@example.com', name: 'Alice 4', cached: false });
    const second = await getUser(db, cache, 1);
    expect(second.cached).toBe(true);
    expect(await cache.dbSize()).toBe(1);
  });
});
