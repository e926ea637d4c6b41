-- The store schema of flagwise 0.2.0 (before schema versions), as companion/store.py made it:
-- tests/test_store_db.py upgrades a store made with it.

CREATE TABLE IF NOT EXISTS keys (
    device_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, added_at REAL NOT NULL,
    revoked_at REAL, hard INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    event_id BLOB PRIMARY KEY, device_id TEXT NOT NULL, counter INTEGER NOT NULL,
    type TEXT NOT NULL, device_time INTEGER NOT NULL, read_time INTEGER NOT NULL,
    received_at REAL NOT NULL, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS event_mpxns (
    mpxn TEXT NOT NULL, event_id BLOB NOT NULL, PRIMARY KEY (mpxn, event_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flags (
    mpxn TEXT PRIMARY KEY, flag TEXT, effective_from TEXT, reason TEXT NOT NULL,
    event_id TEXT, event_ids TEXT NOT NULL, override TEXT, version INTEGER NOT NULL,
    updated_at REAL NOT NULL, code TEXT NOT NULL DEFAULT 'none');
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, mpxn TEXT NOT NULL, version INTEGER NOT NULL,
    flow TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL, mqtt_done INTEGER NOT NULL DEFAULT 0,
    dtc_file TEXT, UNIQUE (mpxn, version));
CREATE INDEX IF NOT EXISTS outbox_mqtt ON outbox (mqtt_done, seq);
CREATE INDEX IF NOT EXISTS outbox_dtc ON outbox (flow, dtc_file, seq);
CREATE TABLE IF NOT EXISTS dtc_files (
    file_id TEXT PRIMARY KEY, flow TEXT NOT NULL, created TEXT NOT NULL, name TEXT NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT, reason TEXT NOT NULL,
    detail TEXT NOT NULL, size INTEGER NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejection_counts (
    device_id TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    first_at REAL NOT NULL, last_at REAL NOT NULL, PRIMARY KEY (device_id, reason)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_device_counter ON events (device_id, counter);
CREATE TABLE IF NOT EXISTS suspicious (
    event_id BLOB NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (event_id, kind));
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, created_at REAL NOT NULL,
    revoked_at REAL);

