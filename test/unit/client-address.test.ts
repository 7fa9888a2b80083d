/** Who the client is (socket vs trusted X-Forwarded-For), loopback, and the failure buckets: pure. */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import {
  clientAddress,
  compileTrustedProxies,
  forwardedEntry,
  isLoopbackClient,
  normalizeAddress,
} from '../../src/auth/client-address.ts';
import { AuthFailureLimiter } from '../../src/auth/failure-limiter.ts';
import { ADDRESS_OR_CIDR_PATTERN } from '../../src/config/address-pattern.ts';
import { LogThrottle } from '../../src/telemetry/log-throttle.ts';

describe('client address', () => {
  const trusted = compileTrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);

  it('is the socket address when no proxy is trusted: X-Forwarded-For is never read', () => {
    assert.equal(clientAddress('203.0.113.9', '1.2.3.4', undefined), '203.0.113.9');
    assert.equal(compileTrustedProxies([]), undefined);
  });

  it('is the socket address when the peer is not a trusted proxy, whatever the header says', () => {
    assert.equal(clientAddress('203.0.113.9', '10.1.1.1', trusted), '203.0.113.9');
    assert.equal(clientAddress('127.0.0.2', '127.0.0.1', trusted), '127.0.0.2');
  });

  it('behind trusted proxies, is the right-most entry that is not one of them', () => {
    assert.equal(clientAddress('10.0.0.5', '198.51.100.4', trusted), '198.51.100.4');
    // The client wrote "1.1.1.1" itself; the first trusted proxy appended the address it saw.
    assert.equal(clientAddress('10.0.0.5', '1.1.1.1, 198.51.100.4, 10.2.2.2', trusted), '198.51.100.4');
    assert.equal(clientAddress('192.168.1.7', '198.51.100.4,192.168.1.7', trusted), '198.51.100.4');
    assert.equal(clientAddress('10.0.0.5', ['1.1.1.1', '198.51.100.4'], trusted), '198.51.100.4');
    assert.equal(clientAddress('fd00::1', '2001:db8::7', trusted), '2001:db8::7');
  });

  it('is the left-most entry when every hop is trusted, and the peer when there is no header', () => {
    assert.equal(clientAddress('10.0.0.5', '10.9.9.9, 10.3.3.3', trusted), '10.9.9.9');
    assert.equal(clientAddress('10.0.0.5', undefined, trusted), '10.0.0.5');
    assert.equal(clientAddress('10.0.0.5', '', trusted), '10.0.0.5');
  });

  it('stops at the last trusted hop on a malformed entry, so garbage cannot mint addresses', () => {
    assert.equal(clientAddress('10.0.0.5', 'not-an-ip', trusted), '10.0.0.5');
    assert.equal(clientAddress('10.0.0.5', '198.51.100.4, 10.1.1.1, x', trusted), '10.0.0.5');
    assert.equal(clientAddress('10.0.0.5', 'x, 10.1.1.1', trusted), '10.1.1.1');
  });

  it('reads ports, brackets and IPv4-mapped IPv6 the way proxies write them', () => {
    assert.equal(forwardedEntry(' 198.51.100.4:5678 '), '198.51.100.4');
    assert.equal(forwardedEntry('[2001:db8::7]:443'), '2001:db8::7');
    assert.equal(forwardedEntry('2001:db8::7'), '2001:db8::7');
    assert.equal(forwardedEntry('::FFFF:198.51.100.4'), '198.51.100.4');
    assert.equal(forwardedEntry('[2001:db8::7'), undefined);
    assert.equal(forwardedEntry('unknown'), undefined);
    assert.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeAddress('::ffff:7f00:1'), '::ffff:7f00:1');
    // A dual-stack socket reports IPv4 peers mapped; the trusted list still matches them.
    assert.equal(clientAddress('::ffff:10.0.0.5', '198.51.100.4', trusted), '198.51.100.4');
  });

  it('demo keys: 127.0.0.1 and ::1 are loopback clients, the rest of 127/8 is not', () => {
    assert.ok(isLoopbackClient('127.0.0.1'));
    assert.ok(isLoopbackClient('::1'));
    assert.ok(isLoopbackClient('::ffff:127.0.0.1'));
    assert.ok(!isLoopbackClient('127.0.0.2'));
    assert.ok(!isLoopbackClient('127.0.0.6'));
    assert.ok(!isLoopbackClient('10.0.0.1'));
    assert.ok(!isLoopbackClient(undefined));
  });
});

describe('address pattern of server.trustedProxies', () => {
  const pattern = new RegExp(ADDRESS_OR_CIDR_PATTERN);

  it('accepts exactly what node:net calls an IP address (random strings and IPv6 forms)', () => {
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = '0123456789abcdefABCDEF:.:.';
    for (let i = 0; i < 20_000; i++) {
      let s = '';
      const length = 2 + random(30);
      for (let j = 0; j < length; j++) s += alphabet[random(alphabet.length)];
      assert.equal(pattern.test(s), isIP(s) !== 0, s);
    }
    for (let i = 0; i < 20_000; i++) {
      const groups = Array.from({ length: 1 + random(8) }, () => random(65_536).toString(16));
      const at = random(groups.length + 1);
      const v4 = random(2) ? `:${[random(256), random(256), random(256), random(300)].join('.')}` : '';
      const s = random(2)
        ? `${groups.join(':')}${v4}`
        : `${groups.slice(0, at).join(':')}::${groups.slice(at, groups.length - 1).join(':')}${v4}`;
      assert.equal(pattern.test(s), isIP(s) !== 0, s);
    }
  });

  it('takes CIDR prefixes within the family range', () => {
    for (const ok of [
      '10.0.0.0/8',
      '0.0.0.0/0',
      '1.2.3.4/32',
      '::/0',
      'fd00::/8',
      '::1/128',
      '::ffff:10.0.0.0/104',
    ])
      assert.ok(pattern.test(ok), ok);
    for (const bad of ['10.0.0.0/33', '10.0.0.0/', '::/129', '10.0.0.0/8/8', '256.0.0.1', 'localhost', ''])
      assert.ok(!pattern.test(bad), bad);
  });
});

describe('auth failure buckets', () => {
  const settings = { burst: 3, perMinute: 60, maxAddresses: 100 };

  it('blocks an address after `burst` failures, until one token refills', () => {
    const limiter = new AuthFailureLimiter(settings);
    assert.equal(limiter.recordFailure('a', 0), false);
    assert.equal(limiter.recordFailure('a', 0), false);
    assert.equal(limiter.blockedForMs('a', 0), 0);
    assert.equal(limiter.recordFailure('a', 0), true, 'the third failure empties the bucket');
    assert.equal(limiter.blockedForMs('a', 0), 1_000);
    assert.equal(limiter.blockedForMs('a', 400), 600);
    assert.equal(limiter.blockedForMs('b', 400), 0, 'other addresses are not affected');
    assert.equal(limiter.blockedForMs('a', 1_000), 0, 'one guess a second at 60 a minute');
    assert.equal(limiter.recordFailure('a', 1_000), true);
    assert.equal(limiter.recordFailure('a', 1_000), false, 'an empty bucket does not go into debt');
    assert.equal(limiter.blockedForMs('a', 1_000), 1_000);
  });

  it('forgets a bucket once it is full again', () => {
    const limiter = new AuthFailureLimiter(settings);
    limiter.recordFailure('a', 0);
    assert.equal(limiter.size, 1);
    assert.equal(limiter.blockedForMs('a', 1_000), 0);
    assert.equal(limiter.size, 0);
  });

  it('holds at most maxAddresses buckets, forgetting the least recently failed first', () => {
    const limiter = new AuthFailureLimiter({ ...settings, maxAddresses: 3 });
    for (const address of ['a', 'b', 'c']) for (let i = 0; i < 3; i++) limiter.recordFailure(address, 0);
    limiter.recordFailure('a', 0);
    limiter.recordFailure('d', 0);
    assert.equal(limiter.size, 3);
    assert.equal(limiter.blockedForMs('b', 0), 0, 'b was the oldest');
    assert.ok(limiter.blockedForMs('a', 0) > 0);
    assert.ok(limiter.blockedForMs('c', 0) > 0);
    for (let i = 0; i < 10_000; i++) limiter.recordFailure(`x${i}`, 0);
    assert.equal(limiter.size, 3);
  });

  it('burst 0 turns the limit off', () => {
    const limiter = new AuthFailureLimiter({ ...settings, burst: 0 });
    for (let i = 0; i < 100; i++) assert.equal(limiter.recordFailure('a', 0), false);
    assert.equal(limiter.blockedForMs('a', 0), 0);
    assert.equal(limiter.size, 0);
  });
});

describe('log throttle', () => {
  it('writes maxLines per window, then counts what it held back into the next line', () => {
    const throttle = new LogThrottle(2, 1_000);
    assert.equal(throttle.take(0), 0);
    assert.equal(throttle.take(10), 0);
    assert.equal(throttle.take(20), undefined);
    assert.equal(throttle.take(999), undefined);
    assert.equal(throttle.take(1_000), 2);
    assert.equal(throttle.take(1_001), 0);
  });
});
