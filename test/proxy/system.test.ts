/**
 * /system_stats and /features with every key local ComfyUI 0.18 has (observed finding 32), filled
 * from the cloud; POST /free answers 200 and does nothing (issue 17; issue 11 rule 7).
 */
import t from 'tap'
import { getJson, postJson, startStack } from '../helpers.js'

const LOCAL_SYSTEM_KEYS = ['os', 'ram_total', 'ram_free', 'comfyui_version', 'required_frontend_version', 'installed_templates_version',
  'required_templates_version', 'python_version', 'pytorch_version', 'embedded_python', 'argv']
const LOCAL_DEVICE_KEYS = ['name', 'type', 'index', 'vram_total', 'vram_free', 'torch_vram_total', 'torch_vram_free']
const LOCAL_FEATURE_KEYS = ['supports_preview_metadata', 'max_upload_size', 'extension', 'node_replacements', 'assets']

t.test('/system_stats has every local key, with the cloud\'s values, with and without /api', async t => {
  const stack = await startStack(t)
  const cloud = await getJson(`${stack.simulator.url}/api/system_stats`)
  for (const path of ['/system_stats', '/api/system_stats']) {
    const { status, body } = await getJson(`${stack.url}${path}`)
    t.equal(status, 200, path)
    for (const key of LOCAL_SYSTEM_KEYS) t.ok(Object.hasOwn(body.system, key), `system.${key}`)
    t.ok(body.devices.length > 0)
    t.same(Object.keys(body.devices[0]), LOCAL_DEVICE_KEYS)
    t.equal(body.system.comfyui_version, cloud.body.system.comfyui_version, 'filled from the cloud')
    t.equal(body.system.installed_templates_version, cloud.body.system.workflow_templates_version)
    t.equal(body.devices[0].vram_total, cloud.body.devices[0].vram_total)
  }
})

t.test('/system_stats reads are shared: a poll loop does not become a cloud call each', async t => {
  const stack = await startStack(t)
  await Promise.all(Array.from({ length: 10 }, async () => await getJson(`${stack.url}/system_stats`)))
  t.equal(stack.simulator.app.simulator.requests.filter(r => r.url === '/api/system_stats').length, 1)
})

t.test('/features has every local key, the cloud\'s values winning, with and without /api', async t => {
  const stack = await startStack(t)
  const cloud = await getJson(`${stack.simulator.url}/api/features`)
  for (const path of ['/features', '/api/features']) {
    const { status, body } = await getJson(`${stack.url}${path}`)
    t.equal(status, 200, path)
    t.same(Object.keys(body).slice(0, LOCAL_FEATURE_KEYS.length), LOCAL_FEATURE_KEYS)
    t.equal(body.max_upload_size, cloud.body.max_upload_size, 'the cloud\'s upload limit, not local\'s')
    t.same(body.extension, { manager: { supports_v4: true } })
  }
})

t.test('a cloud system_stats that fails its schema is a 502 naming the field', async t => {
  const stack = await startStack(t)
  stack.simulator.app.simulator.faults.set('GET /api/system_stats', { drift: { remove: ['system'] } })
  const answer = await getJson(`${stack.url}/system_stats`)
  t.equal(answer.status, 502)
  t.equal(answer.body.error.type, 'cloud_schema_mismatch')
})

t.test('POST /free answers 200 with an empty body and calls nothing, with and without /api', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  for (const path of ['/free', '/api/free']) {
    for (const body of [{ unload_models: true, free_memory: true }, '', 'not json']) {
      const answer = await postJson(`${stack.url}${path}`, body)
      t.same([answer.status, answer.text], [200, ''], `${path} ${JSON.stringify(body)}`)
    }
  }
  t.same(sim.requests, [], 'no cloud call')
})
