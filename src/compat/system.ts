/**
 * `/system_stats` and `/features` with every key a local ComfyUI 0.18 answers (observed finding 32),
 * each filled from the cloud's answer where it has one. Pure: no I/O.
 */
import type { Json } from '../cloud/types.js'

/** What a local ComfyUI 0.18 answers at `/features` (observed finding 32); the cloud's values win. */
export const LOCAL_FEATURES: Json = {
  supports_preview_metadata: true,
  max_upload_size: 104_857_600,
  extension: { manager: { supports_v4: true } },
  node_replacements: true,
  assets: false
}

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Local's keys first, in local's order, then whatever else the cloud says; nested objects merged. */
function overlay (defaults: Json, cloud: Json): Json {
  const out: Json = {}
  for (const [key, value] of Object.entries(defaults)) {
    const given = cloud[key]
    out[key] = isObject(value) && isObject(given) ? overlay(value, given) : given === undefined ? value : given
  }
  for (const [key, value] of Object.entries(cloud)) {
    if (!(key in out)) out[key] = value
  }
  return out
}

export function localFeatures (cloud: Json): Json {
  return overlay(LOCAL_FEATURES, cloud)
}

/**
 * The cloud's system stats in local's shape. Keys the cloud does not send get the nearest value it
 * does send (its frontend and templates versions), else an empty string or zero; a device's index is
 * null when the cloud gives none, as local answers for a device without one (observed finding 32).
 */
export function localSystemStats (cloud: { system: Json, devices: Json[] }): Json {
  const { system } = cloud
  const frontend = system.comfyui_frontend_version ?? ''
  const templates = system.workflow_templates_version ?? ''
  return {
    system: overlay({
      os: '',
      ram_total: 0,
      ram_free: 0,
      comfyui_version: '',
      required_frontend_version: frontend,
      installed_templates_version: templates,
      required_templates_version: templates,
      python_version: '',
      pytorch_version: '',
      embedded_python: false,
      argv: []
    }, system),
    devices: cloud.devices.map(device => overlay({
      name: '',
      type: '',
      index: null,
      vram_total: 0,
      vram_free: 0,
      torch_vram_total: 0,
      torch_vram_free: 0
    }, device))
  }
}
