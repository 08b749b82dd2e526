/**
 * The file store: one proxy's state in an embedded SQLite database (better-sqlite3), so that a
 * restart keeps what clients still rely on (client prompt ids, submitters, unfinished jobs).
 * WAL with synchronous=NORMAL: a write is a few microseconds and survives a process crash
 * (an OS crash may lose the last transactions, never corrupt the file).
 */
import Database from 'better-sqlite3'
import { SingleProcessStore } from './store.js'

const SWEEP_INTERVAL_MS = 60_000

export class FileStore extends SingleProcessStore {
  readonly kind = 'file' as const
  private readonly db: Database.Database
  private readonly statements: {
    get: Database.Statement<[string, string, number], { value: string }>
    set: Database.Statement<[string, string, string, number]>
    delete: Database.Statement<[string, string]>
    sweep: Database.Statement<[number]>
    count: Database.Statement<[], { n: number }>
    trim: Database.Statement<[number]>
  }

  private readonly sweeper: NodeJS.Timeout

  constructor (path: string, private readonly options: { maxRecords?: number, now?: () => number } = {}) {
    super(options.now)
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.exec(`CREATE TABLE IF NOT EXISTS records (
      namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires INTEGER NOT NULL,
      PRIMARY KEY (namespace, key)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS records_expires ON records (expires);`)
    this.statements = {
      get: this.db.prepare('SELECT value FROM records WHERE namespace = ? AND key = ? AND expires > ?'),
      set: this.db.prepare('INSERT INTO records (namespace, key, value, expires) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires = excluded.expires'),
      delete: this.db.prepare('DELETE FROM records WHERE namespace = ? AND key = ?'),
      sweep: this.db.prepare('DELETE FROM records WHERE expires <= ?'),
      count: this.db.prepare('SELECT count(*) AS n FROM records'),
      trim: this.db.prepare('DELETE FROM records WHERE (namespace, key) IN (SELECT namespace, key FROM records ORDER BY expires LIMIT ?)')
    }
    this.sweep()
    this.sweeper = setInterval(() => { this.sweep() }, SWEEP_INTERVAL_MS).unref()
  }

  private readonly now = (): number => (this.options.now ?? Date.now)()

  /** Drops expired records, then the soonest-expiring ones beyond maxRecords. */
  sweep (): void {
    this.statements.sweep.run(this.now())
    const excess = this.statements.count.get()!.n - (this.options.maxRecords ?? 1_000_000)
    if (excess > 0) this.statements.trim.run(excess)
  }

  async get<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const row = this.statements.get.get(namespace, key, this.now())
    return row === undefined ? undefined : JSON.parse(row.value) as T
  }

  async set (namespace: string, key: string, value: unknown, ttlMs: number): Promise<void> {
    this.statements.set.run(namespace, key, JSON.stringify(value), this.now() + ttlMs)
  }

  async delete (namespace: string, key: string): Promise<void> {
    this.statements.delete.run(namespace, key)
  }

  override async close (): Promise<void> {
    clearInterval(this.sweeper)
    await super.close()
    if (this.db.open) this.db.close()
  }
}
