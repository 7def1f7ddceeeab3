/**
 * The catalog: every repository in the store, found the way Distribution finds them (a directory with a
 * `_manifests` child is a repository; directories whose names start with `_` are never descended into).
 */
import type { StorageDriver } from '../driver/driver.js';
import { PathNotFoundError } from '../driver/errors.js';
import { baseName } from './links.js';
import { repositoriesRoot } from './paths.js';

/**
 * Lists repository names in lexical order, after `last` when given, at most `limit` of them. The whole
 * tree is read and sorted, because a depth-first walk does not visit names in lexical order ("a/x" sorts
 * after "a-b").
 */
export async function listRepositories(
  driver: StorageDriver,
  options: { last?: string; limit: number; signal?: AbortSignal },
): Promise<{ names: string[]; more: boolean }> {
  const root = repositoriesRoot();
  const all: string[] = [];

  async function visit(dir: string): Promise<void> {
    let children: string[];
    try {
      children = await driver.list(dir, options.signal);
    } catch (error) {
      if (error instanceof PathNotFoundError) return;
      throw error;
    }
    if (dir !== root && children.some((child) => baseName(child) === '_manifests')) all.push(dir.slice(root.length + 1));
    for (const child of children) {
      if (!baseName(child).startsWith('_')) await visit(child);
    }
  }

  await visit(root);
  all.sort();
  const after = options.last === undefined ? all : all.filter((name) => name > options.last!);
  return { names: after.slice(0, options.limit), more: after.length > options.limit };
}
