/**
 * The request log's pure parts: partition names and ranges, what to create and retire, the read
 * API's parameter checks and cursors, the INSERT's parameters, cost, spill-file rows, trace ids.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SluiceError } from '../../src/errors/sluice-error.ts';
import {
  parsePartitionName,
  partitionAt,
  partitionsExpired,
  partitionsToCreate,
} from '../../src/requestlog/partitions.ts';
import {
  encodeCursor,
  parseRequestsQuery,
  parseUsageQuery,
  requestsSql,
  usageSql,
} from '../../src/requestlog/queries.ts';
import {
  COLUMNS,
  costOf,
  INSERT_SQL,
  insertParam,
  rowFromJson,
  serializeRow,
} from '../../src/requestlog/row.ts';
import { traceIdFrom } from '../../src/telemetry/trace-context.ts';
import { row } from '../helpers/request-log.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 29, 13, 45);

test('partitions: names round-trip, days and hours, UTC', () => {
  const day = partitionAt(NOW, 'day');
  assert.deepEqual(day, {
    name: 'request_log_p20261129',
    from: Date.UTC(2026, 10, 29),
    to: Date.UTC(2026, 10, 30),
  });
  const hour = partitionAt(NOW, 'hour');
  assert.equal(hour.name, 'request_log_p2026112913');
  assert.equal(hour.to - hour.from, 3_600_000);
  assert.deepEqual(parsePartitionName(day.name), day);
  assert.deepEqual(parsePartitionName(hour.name), hour);
  for (const bad of [
    'request_log_default',
    'request_log_p20261345',
    'request_log_p2026112925',
    'other_p20261129',
  ]) {
    assert.equal(parsePartitionName(bad), undefined, bad);
  }
  // Across a year end.
  assert.equal(partitionAt(Date.UTC(2026, 11, 31, 23, 59), 'day').name, 'request_log_p20261231');
  assert.equal(partitionAt(Date.UTC(2026, 11, 31, 23, 59) + 60_000, 'day').name, 'request_log_p20270101');
});

test('partitions: created ahead, skipping any that exist or would overlap', () => {
  const names = (ps: { name: string }[]) => ps.map((p) => p.name);
  assert.deepEqual(names(partitionsToCreate(NOW, 'day', 2, [])), [
    'request_log_p20261129',
    'request_log_p20261130',
    'request_log_p20261201',
  ]);
  const existing = [parsePartitionName('request_log_p20261130')!];
  assert.deepEqual(names(partitionsToCreate(NOW, 'day', 2, existing)), [
    'request_log_p20261129',
    'request_log_p20261201',
  ]);
  // Switched to hourly while today's daily partition exists: no hour of today is created.
  const hourly = partitionsToCreate(NOW, 'hour', 12, [parsePartitionName('request_log_p20261129')!]);
  assert.deepEqual(names(hourly), ['request_log_p2026113000', 'request_log_p2026113001']);
});

test('partitions: expired only when the whole range is past the retention', () => {
  const ps = ['request_log_p20261029', 'request_log_p20261030', 'request_log_p20261031'].map(
    (n) => parsePartitionName(n)!,
  );
  // Retention 30 days at 2026-11-29T13:45: the cutoff is 2026-10-30T13:45.
  assert.deepEqual(
    partitionsExpired(NOW, 30, ps).map((p) => p.name),
    ['request_log_p20261029'],
  );
  assert.deepEqual(
    partitionsExpired(NOW + DAY, 30, ps).map((p) => p.name),
    ['request_log_p20261029', 'request_log_p20261030'],
  );
});

function badParam(fn: () => unknown): string | null {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SluiceError);
    assert.equal(err.code, 'invalid_request');
    return err.param;
  }
  return 'accepted';
}

test('read API: parameters are checked, each refusal names its parameter', () => {
  assert.deepEqual(parseRequestsQuery({}), {
    tenant: undefined,
    model: undefined,
    status: undefined,
    sinceMs: undefined,
    untilMs: undefined,
    limit: 100,
    after: undefined,
  });
  const f = parseRequestsQuery({
    tenant: 'acme',
    status: '4xx',
    since: '2026-11-29',
    until: '2026-11-29T12:00:00+01:00',
    limit: '7',
  });
  assert.deepEqual(f.status, { from: 400, to: 500 });
  assert.equal(f.sinceMs, Date.UTC(2026, 10, 29));
  assert.equal(f.untilMs, Date.UTC(2026, 10, 29, 11));
  assert.equal(f.limit, 7);
  assert.deepEqual(parseRequestsQuery({ status: '429' }).status, { from: 429, to: 430 });
  assert.deepEqual(parseRequestsQuery({ status: 'error' }).status, { from: 400, to: 600 });
  const cursor = encodeCursor(1_795_945_971_190, 'req-1');
  assert.deepEqual(parseRequestsQuery({ cursor }).after, {
    createdAtMs: 1_795_945_971_190,
    requestId: 'req-1',
  });

  assert.equal(
    badParam(() => parseRequestsQuery({ limit: '0' })),
    'limit',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ limit: '1.5' })),
    'limit',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ status: '600' })),
    'status',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ status: '2XX' })),
    'status',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ since: '2026-11-29T10:00' })),
    'since',
  ); // no zone
  assert.equal(
    badParam(() => parseRequestsQuery({ since: '2026-02-30' })),
    'since',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ until: 'now' })),
    'until',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ cursor: 'e30' })),
    'cursor',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ model: ['a', 'b'] })),
    'model',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ tenant: 'x'.repeat(257) })),
    'tenant',
  );
  assert.equal(
    badParam(() => parseRequestsQuery({ order: 'asc' })),
    'order',
  );

  const u = parseUsageQuery({}, NOW);
  assert.deepEqual(u, {
    granularity: 'hour',
    tenant: undefined,
    model: undefined,
    sinceMs: NOW - DAY,
    untilMs: NOW,
  });
  assert.equal(parseUsageQuery({ granularity: 'day' }, NOW).sinceMs, NOW - 30 * DAY);
  assert.equal(
    badParam(() => parseUsageQuery({ granularity: 'week' }, NOW)),
    'granularity',
  );
  assert.equal(
    badParam(() => parseUsageQuery({ since: '2026-01-01', granularity: 'hour' }, NOW)),
    'since',
  );
  assert.equal(
    badParam(() => parseUsageQuery({ since: '2026-01-01', granularity: 'day' }, NOW)),
    'accepted',
  );
});

test('read API: SQL binds every value (nothing interpolated) and pages by keyset', () => {
  const evil = "x'; DROP TABLE request_log; --";
  const { sql, params } = requestsSql(
    parseRequestsQuery({
      tenant: evil,
      model: evil,
      status: '5xx',
      cursor: encodeCursor(5, evil),
      limit: '10',
    }),
  );
  assert.ok(!sql.includes('DROP'));
  assert.deepEqual(params, [evil, evil, 500, 600, 5, evil, 11]);
  assert.match(sql, /\(created_at, request_id\) < \(to_timestamp\(\$5::float8 \/ 1000\.0\), \$6\)/);
  assert.match(sql, /ORDER BY created_at DESC, request_id DESC/);
  const usage = usageSql(parseUsageQuery({ tenant: evil }, NOW));
  assert.ok(!usage.sql.includes('DROP'));
  assert.deepEqual(usage.params.slice(0, 4), ['hour', NOW - DAY, NOW, evil]);
});

test('rows: one JSON parameter naming every column, cost from the price per million, spill lines checked', () => {
  const rows = [
    row({ requestId: 'a', status: 200 }),
    row({ requestId: 'b', status: 503, errorCode: 'upstream_unavailable' }),
  ];
  const param = insertParam(rows.map(serializeRow));
  assert.deepEqual(JSON.parse(param), rows);
  assert.deepEqual(insertParam([]), '[]');
  assert.equal((INSERT_SQL.match(/\$\d+/g) ?? []).length, 1);
  for (const [column, , key] of COLUMNS) {
    assert.ok(INSERT_SQL.includes(column), column);
    assert.ok(INSERT_SQL.includes(`"${key}"`), key);
  }
  // Every field of a row has a column.
  assert.deepEqual(COLUMNS.map(([, , key]) => key).sort(), Object.keys(rows[0]!).sort());

  assert.equal(costOf({ inputPerMillion: 2.5, outputPerMillion: 10 }, 1_000, 500), 0.0075);
  assert.equal(costOf(undefined, 1_000, 500), null);
  assert.equal(costOf({ inputPerMillion: 1, outputPerMillion: 1 }, null, null), null);

  const r = row();
  assert.deepEqual(rowFromJson(JSON.parse(JSON.stringify(r))), r);
  assert.equal(rowFromJson({ ...r, requestId: 'has space' }), undefined);
  assert.equal(rowFromJson({ ...r, createdAtMs: 'yesterday' }), undefined);
  assert.equal(rowFromJson(null), undefined);
  assert.equal(rowFromJson({ ...r, tenant: 'x'.repeat(1000) })?.tenant.length, 256);
});

test('trace ids: a valid traceparent is kept, anything else is not', () => {
  assert.equal(
    traceIdFrom('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
    '4bf92f3577b34da6a3ce929d0e0e4736',
  );
  for (const bad of [
    undefined,
    '',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  ]) {
    assert.equal(traceIdFrom(bad), undefined, String(bad));
  }
});
