import type Database from 'better-sqlite3';

/** Statements kept per connection (least recently used dropped beyond it; the catalog runs a few dozen). */
const LIMIT = 256;

const uncached = new WeakMap<Database.Database, Database.Database['prepare']>();

/**
 * Makes `db.prepare` reuse a statement by its SQL text. Compiling a statement costs more than running it, and the
 * catalog runs the same statements for every recording (a third of the CPU of a dock of small files went to
 * compiling them again). A statement that is iterated must not be shared (two open iterations of one statement
 * conflict): take it from `freshStatement`.
 */
export function cacheStatements(db: Database.Database): void {
  const prepare = db.prepare.bind(db);
  uncached.set(db, prepare);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let stmt = cache.get(sql);
    if (stmt) {
      cache.delete(sql);
    } else {
      stmt = prepare(sql);
      if (cache.size >= LIMIT) cache.delete(cache.keys().next().value!);
    }
    cache.set(sql, stmt);
    return stmt;
  }) as Database.Database['prepare'];
}

/** A statement of its own (for `iterate`, which must not share a statement with another iteration). */
export function freshStatement(db: Database.Database, sql: string): Database.Statement {
  return (uncached.get(db) ?? db.prepare.bind(db))(sql);
}
