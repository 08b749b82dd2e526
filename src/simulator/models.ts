/**
 * The model files the simulator pretends to have, by ComfyUI model folder. They fill the loaders' choice lists in
 * `/api/object_info`, so a workflow naming any of them validates and runs, and one naming another file gets
 * local's `value_not_in_list`. `SIMULATOR_MODELS` replaces the list of any folder it names.
 */

export type ModelFolders = Record<ModelFolder, string[]>

export const MODEL_FOLDERS = [
  'checkpoints', 'loras', 'vae', 'controlnet', 'upscale_models', 'diffusion_models', 'text_encoders', 'clip_vision',
  'style_models', 'embeddings'
] as const
export type ModelFolder = typeof MODEL_FOLDERS[number]

/** Names from ComfyUI's templates and the most used community files, so the standard workflows run unchanged. */
export const DEFAULT_MODELS: Readonly<ModelFolders> = {
  checkpoints: [
    'v1-5-pruned-emaonly.safetensors', 'v1-5-pruned-emaonly-fp16.safetensors', '512-inpainting-ema.safetensors',
    'sd_xl_base_1.0.safetensors', 'sd_xl_refiner_1.0.safetensors', 'sd_xl_turbo_1.0_fp16.safetensors',
    'sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors', 'flux1-dev-fp8.safetensors', 'flux1-schnell-fp8.safetensors',
    'dreamshaper_8.safetensors', 'realisticVisionV60B1_v51VAE.safetensors'
  ],
  loras: ['lcm-lora-sdv1-5.safetensors', 'lcm-lora-sdxl.safetensors', 'add_detail.safetensors', 'pixel-art-xl.safetensors', 'sdxl_lightning_4step_lora.safetensors'],
  vae: ['vae-ft-mse-840000-ema-pruned.safetensors', 'sdxl_vae.safetensors', 'ae.safetensors', 'wan_2.1_vae.safetensors'],
  controlnet: [
    'control_v11p_sd15_canny.pth', 'control_v11p_sd15_openpose.pth', 'control_v11f1p_sd15_depth.pth', 'control_v11p_sd15_scribble.pth',
    'control_v11p_sd15_inpaint.pth', 'controlnet-canny-sdxl-1.0.safetensors'
  ],
  upscale_models: ['RealESRGAN_x4plus.pth', 'RealESRGAN_x2plus.pth', '4x-UltraSharp.pth', '4x_NMKD-Siax_200k.pth'],
  diffusion_models: ['flux1-dev.safetensors', 'flux1-schnell.safetensors', 'sd3.5_large.safetensors', 'wan2.1_t2v_1.3B_fp16.safetensors', 'wan2.1_i2v_480p_14B_fp16.safetensors'],
  text_encoders: ['clip_l.safetensors', 'clip_g.safetensors', 't5xxl_fp16.safetensors', 't5xxl_fp8_e4m3fn.safetensors', 'umt5_xxl_fp8_e4m3fn_scaled.safetensors'],
  clip_vision: ['clip_vision_g.safetensors', 'CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors', 'clip_vision_h.safetensors'],
  style_models: ['flux1-redux-dev.safetensors'],
  embeddings: ['easynegative.safetensors']
}

/** Fills in the defaults for every folder the overrides do not name. */
export function resolveModels (overrides: Partial<Record<ModelFolder, string[]>> = {}): ModelFolders {
  return Object.fromEntries(MODEL_FOLDERS.map(folder => [folder, [...(overrides[folder] ?? DEFAULT_MODELS[folder])]])) as ModelFolders
}

/**
 * Parses `SIMULATOR_MODELS`: `folder=name,name;folder=name`, e.g.
 * `checkpoints=mine.safetensors,v1-5-pruned-emaonly.safetensors;loras=style.safetensors`. An empty value keeps
 * every default; `folder=` empties that folder. Throws with a message naming what is wrong.
 */
export function parseModelList (text: string): Partial<Record<ModelFolder, string[]>> {
  const out: Partial<Record<ModelFolder, string[]>> = {}
  for (const part of text.split(';')) {
    if (part.trim() === '') continue
    const eq = part.indexOf('=')
    const folder = part.slice(0, eq).trim()
    if (eq < 0 || !(MODEL_FOLDERS as readonly string[]).includes(folder)) {
      throw new Error(`expects folder=name,name;… with folders ${MODEL_FOLDERS.join(', ')} (got ${JSON.stringify(part.trim())})`)
    }
    out[folder as ModelFolder] = part.slice(eq + 1).split(',').map(name => name.trim()).filter(name => name !== '')
  }
  return out
}

/** The scale an upscale model's name announces (`4x-UltraSharp`, `RealESRGAN_x2plus`), 4 when it says none. */
export function upscaleFactor (name: string): number {
  const match = /(?:^|[^a-z0-9])(\d)x|x(\d)(?:[^0-9]|$)/i.exec(name)
  return Number(match?.[1] ?? match?.[2] ?? 4)
}
