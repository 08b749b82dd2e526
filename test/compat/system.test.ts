import t from 'tap'
import { LOCAL_FEATURES, localFeatures, localSystemStats } from '../../src/compat/system.js'

/** The keys a real ComfyUI 0.18.1 answered (observed finding 32), in its order. */
const LOCAL_SYSTEM_KEYS = ['os', 'ram_total', 'ram_free', 'comfyui_version', 'required_frontend_version', 'installed_templates_version',
  'required_templates_version', 'python_version', 'pytorch_version', 'embedded_python', 'argv']
const LOCAL_DEVICE_KEYS = ['name', 'type', 'index', 'vram_total', 'vram_free', 'torch_vram_total', 'torch_vram_free']

t.test('system stats: every local key, in local order, filled from the cloud where it has one', async t => {
  const cloud = {
    system: {
      os: 'posix', python_version: '3.12.1', embedded_python: false, comfyui_version: '0.3.75', pytorch_version: '2.8.0',
      argv: ['main.py'], ram_total: 100, ram_free: 50, comfyui_frontend_version: '1.30.6', workflow_templates_version: '0.2.11', cloud_version: 'abc'
    },
    devices: [{ name: 'cuda:0 L40S', type: 'cuda', vram_total: 10, vram_free: 5 }]
  }
  const stats = localSystemStats(cloud) as { system: Record<string, unknown>, devices: Array<Record<string, unknown>> }
  t.same(Object.keys(stats.system).slice(0, LOCAL_SYSTEM_KEYS.length), LOCAL_SYSTEM_KEYS)
  t.match(stats.system, { os: 'posix', ram_total: 100, ram_free: 50, comfyui_version: '0.3.75', python_version: '3.12.1', argv: ['main.py'] })
  t.equal(stats.system.required_frontend_version, '1.30.6', 'from the cloud\'s frontend version')
  t.equal(stats.system.installed_templates_version, '0.2.11', 'from the cloud\'s templates version')
  t.equal(stats.system.required_templates_version, '0.2.11')
  t.equal(stats.system.cloud_version, 'abc', 'the cloud\'s own keys are kept after local\'s')
  t.same(Object.keys(stats.devices[0]), LOCAL_DEVICE_KEYS)
  t.same(stats.devices[0], { name: 'cuda:0 L40S', type: 'cuda', index: null, vram_total: 10, vram_free: 5, torch_vram_total: 0, torch_vram_free: 0 })
})

t.test('system stats: a value the cloud gives wins over the fallback', async t => {
  const stats = localSystemStats({
    system: { os: 'nt', required_frontend_version: '9.9.9', comfyui_frontend_version: '1.0.0' },
    devices: [{ name: 'x', type: 'cuda', index: 3, torch_vram_total: 7 }]
  }) as { system: Record<string, unknown>, devices: Array<Record<string, unknown>> }
  t.equal(stats.system.required_frontend_version, '9.9.9')
  t.equal(stats.system.python_version, '', 'absent string keys are empty strings')
  t.same(stats.system.argv, [])
  t.match(stats.devices[0], { index: 3, torch_vram_total: 7, vram_free: 0 })
})

t.test('features: local\'s keys, the cloud\'s values, nested objects merged', async t => {
  t.same(localFeatures({}), LOCAL_FEATURES)
  const features = localFeatures({ max_upload_size: 52428800, extension: { manager: { other: 1 } }, cloud_only: true })
  t.same(Object.keys(features), ['supports_preview_metadata', 'max_upload_size', 'extension', 'node_replacements', 'assets', 'cloud_only'])
  t.equal(features.max_upload_size, 52428800)
  t.same(features.extension, { manager: { supports_v4: true, other: 1 } })
  t.equal(features.assets, false)
})
