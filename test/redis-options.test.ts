import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisAdapter, type RedisAdapterOptions } from '../dist/adapters/redis/index.js'

/** Asserts that `redisAdapter(options)` throws FST_WS_HUB_INVALID_OPTION naming `name`, with `reason` in the message. */
function refused (options: unknown, name: string, reason: RegExp): void {
  assert.throws(() => redisAdapter(options as RedisAdapterOptions), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'FST_WS_HUB_INVALID_OPTION')
    assert.ok(error.message.includes(`"${name}"`), error.message)
    assert.match(error.message, reason)
    return true
  }, JSON.stringify(options))
}

test('a misspelt option is refused, naming it and the closest valid one', () => {
  refused({ prefx: 'a' }, 'adapter.prefx', /did you mean "prefix"/)
  refused({ leaseTTL: 1000 }, 'adapter.leaseTTL', /did you mean "leaseTtl"/)
  refused({ url: 'redis://127.0.0.1:6379', stalTimeout: 500 }, 'adapter.stalTimeout', /did you mean "stallTimeout"/)
  refused({ somethingElse: true }, 'adapter.somethingElse', /known options: url, cluster, client, prefix, .*unsubscribeDelay/)
})

test('a url that is not a Redis URL is refused with the reason', () => {
  refused({ url: 'http://127.0.0.1:6379' }, 'adapter.url', /redis: or rediss:, not http:/)
  refused({ url: 'localhost:6379' }, 'adapter.url', /redis: or rediss:, not localhost:/)
  refused({ url: '127.0.0.1:6379' }, 'adapter.url', /not a URL/)
  refused({ url: '//127.0.0.1:6379' }, 'adapter.url', /not a URL/)
  refused({ url: '' }, 'adapter.url', /not a URL/)
})

test('redis:, rediss: and unix socket paths are taken', async () => {
  for (const url of ['redis://127.0.0.1:6379', 'REDIS://user:pw@127.0.0.1:6379/3', 'rediss://redis.example:6380', '/run/redis/redis.sock', '/tmp/redis.sock?db=2']) {
    const adapter = redisAdapter({ url })
    await adapter.close()
  }
})

test('the stall, delivery-delay and pending-bytes bounds are checked', () => {
  refused({ stallTimeout: 0 }, 'adapter.stallTimeout', /at least 10/)
  refused({ stallTimeout: 1.5 }, 'adapter.stallTimeout', /whole number of ms/)
  refused({ stallTimeout: '1000' }, 'adapter.stallTimeout', /whole number of ms/)
  refused({ maxDeliveryDelay: 5 }, 'adapter.maxDeliveryDelay', /\(or 0: off\)/)
  refused({ maxDeliveryDelay: -1 }, 'adapter.maxDeliveryDelay', /at least 10/)
  refused({ maxPendingBytes: 100 }, 'adapter.maxPendingBytes', /whole number of bytes, at least 1024/)
  for (const options of [{ maxDeliveryDelay: 0 }, { maxDeliveryDelay: 10, stallTimeout: 10, maxPendingBytes: 1024 }]) {
    assert.equal(typeof redisAdapter(options).publish, 'function')
  }
})
