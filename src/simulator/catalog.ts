/**
 * The node classes the simulator knows: ComfyUI's common core nodes with their inputs, outputs and widget ranges, in
 * the shape local `/object_info` answers (server.py node_info: `input`, `input_order`, `is_input_list`, `output`, …,
 * `search_aliases`; flags such as `deprecated` only when set). Choice lists of model files come from the instance's
 * model folders and LoadImage's from the account's uploads.
 */
import type { ModelFolder, ModelFolders } from './models.js'

type Options = Record<string, unknown>
/** ComfyUI's input spec: [type, options]; a combo's type is its list of choices. */
export type InputSpec = [string | string[], Options?]
type InputDef = InputSpec | ((lists: Lists) => InputSpec)

export interface Lists { models: ModelFolders, uploads: string[] }

export interface NodeInfo {
  input: { required: Record<string, InputSpec>, optional?: Record<string, InputSpec>, hidden?: Record<string, string> }
  input_order: { required: string[], optional?: string[], hidden?: string[] }
  is_input_list: boolean
  output: string[]
  output_is_list: boolean[]
  output_name: string[]
  name: string
  display_name: string
  description: string
  python_module: string
  category: string
  output_node: boolean
  output_tooltips?: string[]
  deprecated?: boolean
  experimental?: boolean
  search_aliases: string[]
}

interface NodeSpec {
  display: string
  category: string
  module?: string
  description?: string
  aliases?: string[]
  required: Record<string, InputDef>
  optional?: Record<string, InputDef>
  hidden?: Record<string, string>
  output?: string[]
  names?: string[]
  tooltips?: string[]
  outputNode?: boolean
  deprecated?: boolean
  experimental?: boolean
}

const MAX_RESOLUTION = 16384
/** sys.maxsize and 0xffffffffffffffff, as JSON numbers (Python sends the exact integers; doubles round them). */
const MAX_SEED = 18446744073709551615
const INT_MAX = 9223372036854775807

const int = (value: number, min: number, max: number, step?: number, extra: Options = {}): InputSpec =>
  ['INT', { default: value, min, max, ...(step === undefined ? {} : { step }), ...extra }]
const float = (value: number, min: number, max: number, step: number, extra: Options = {}): InputSpec =>
  ['FLOAT', { default: value, min, max, step, ...extra }]
const text = (value: string, extra: Options = {}): InputSpec => ['STRING', { default: value, ...extra }]
const multiline = (): InputSpec => ['STRING', { multiline: true, dynamicPrompts: true }]
const bool = (value: boolean, extra: Options = {}): InputSpec => ['BOOLEAN', { default: value, ...extra }]
const choice = (values: string[], extra: Options = {}): InputSpec => [values, extra]
const link = (type: string, extra: Options = {}): InputSpec => [type, extra]
const files = (folder: ModelFolder, extra: Options = {}, add: string[] = []): InputDef => lists => [[...lists.models[folder], ...add], extra]
const seed = (): InputSpec => int(0, 0, MAX_SEED, undefined, { control_after_generate: true })
const size = (value: number, step = 8, min = 16): InputSpec => int(value, min, MAX_RESOLUTION, step)

export const SAMPLERS = [
  'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'dpm_2', 'dpm_2_ancestral',
  'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu',
  'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm',
  'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'gradient_estimation', 'er_sde', 'ddim', 'uni_pc', 'uni_pc_bh2'
]
export const SCHEDULERS = ['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal']
const UPSCALE = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']
const LATENT_UPSCALE = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp']
const CROP = ['disabled', 'center']
const SAVE_HIDDEN = { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' }
const PREFIX_TOOLTIP = 'The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.'
const VIDEO_MODULE = 'comfy_extras.nodes_video'
/** SaveAnimatedWEBP's `method`: libwebp's effort (nodes_images.py COMPRESS_METHODS). */
export const WEBP_METHODS: Readonly<Record<string, number>> = { default: 4, fastest: 0, slowest: 6 }
const CLIP_TYPES = ['stable_diffusion', 'stable_cascade', 'sd3', 'stable_audio', 'mochi', 'ltxv', 'pixart', 'cosmos', 'lumina2', 'wan', 'hidream', 'chroma', 'ace', 'omnigen2', 'qwen_image', 'hunyuan_image', 'flux2']
const DUAL_CLIP_TYPES = ['sdxl', 'sd3', 'flux', 'hunyuan_video', 'hidream', 'hunyuan_image', 'hunyuan_video_15']
const cond = (): InputSpec => link('CONDITIONING')
/** What nodes that prepare a latent for a model (inpainting, Wan image-to-video) return. */
const CONDITIONING_PAIR_AND_LATENT = { output: ['CONDITIONING', 'CONDITIONING', 'LATENT'], names: ['positive', 'negative', 'latent'] }
const tiled = (name: string, type: string, tileStep: number, verb: string): Record<string, InputSpec> => ({
  [name]: link(type),
  vae: link('VAE'),
  tile_size: int(512, 64, 4096, tileStep),
  overlap: int(64, 0, 4096, 32),
  temporal_size: int(64, 8, 4096, 4, { tooltip: `Only used for video VAEs: Amount of frames to ${verb} at a time.` }),
  temporal_overlap: int(8, 4, 4096, 4, { tooltip: 'Only used for video VAEs: Amount of frames to overlap.' })
})

const SPECS: Record<string, NodeSpec> = {
  // loaders
  CheckpointLoaderSimple: {
    display: 'Load Checkpoint',
    category: 'loaders',
    description: 'Loads a diffusion model checkpoint, diffusion models are used to denoise latents.',
    aliases: ['load model', 'checkpoint', 'model loader', 'load checkpoint', 'ckpt', 'model'],
    required: { ckpt_name: files('checkpoints', { tooltip: 'The name of the checkpoint (model) to load.' }) },
    output: ['MODEL', 'CLIP', 'VAE'],
    tooltips: ['The model used for denoising latents.', 'The CLIP model used for encoding text prompts.', 'The VAE model used for encoding and decoding images to and from latent space.']
  },
  VAELoader: { display: 'Load VAE', category: 'loaders', required: { vae_name: files('vae', {}, ['pixel_space']) }, output: ['VAE'] },
  LoraLoader: {
    display: 'Load LoRA',
    category: 'loaders',
    description: 'LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are denoised such as applying styles. Multiple LoRA nodes can be linked together.',
    aliases: ['lora', 'load lora', 'apply lora', 'lora loader', 'lora model'],
    required: {
      model: link('MODEL', { tooltip: 'The diffusion model the LoRA will be applied to.' }),
      clip: link('CLIP', { tooltip: 'The CLIP model the LoRA will be applied to.' }),
      lora_name: files('loras', { tooltip: 'The name of the LoRA.' }),
      strength_model: float(1, -100, 100, 0.01, { tooltip: 'How strongly to modify the diffusion model. This value can be negative.' }),
      strength_clip: float(1, -100, 100, 0.01, { tooltip: 'How strongly to modify the CLIP model. This value can be negative.' })
    },
    output: ['MODEL', 'CLIP'],
    tooltips: ['The modified diffusion model.', 'The modified CLIP model.']
  },
  LoraLoaderModelOnly: {
    display: 'LoraLoaderModelOnly',
    category: 'loaders',
    aliases: ['lora', 'load lora', 'apply lora', 'lora loader', 'lora model'],
    required: { model: link('MODEL'), lora_name: files('loras'), strength_model: float(1, -100, 100, 0.01) },
    output: ['MODEL']
  },
  ControlNetLoader: {
    display: 'Load ControlNet Model',
    category: 'loaders',
    aliases: ['controlnet', 'control net', 'cn', 'load controlnet', 'controlnet loader'],
    required: { control_net_name: files('controlnet') },
    output: ['CONTROL_NET']
  },
  DiffControlNetLoader: { display: 'Load ControlNet Model (diff)', category: 'loaders', required: { model: link('MODEL'), control_net_name: files('controlnet') }, output: ['CONTROL_NET'] },
  UNETLoader: {
    display: 'Load Diffusion Model',
    category: 'advanced/loaders',
    required: { unet_name: files('diffusion_models'), weight_dtype: choice(['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2']) },
    output: ['MODEL']
  },
  CLIPLoader: {
    display: 'Load CLIP',
    category: 'advanced/loaders',
    required: { clip_name: files('text_encoders'), type: choice(CLIP_TYPES) },
    optional: { device: choice(['default', 'cpu'], { advanced: true }) },
    output: ['CLIP']
  },
  DualCLIPLoader: {
    display: 'DualCLIPLoader',
    category: 'advanced/loaders',
    required: { clip_name1: files('text_encoders'), clip_name2: files('text_encoders'), type: choice(DUAL_CLIP_TYPES) },
    optional: { device: choice(['default', 'cpu'], { advanced: true }) },
    output: ['CLIP']
  },
  CLIPVisionLoader: { display: 'Load CLIP Vision', category: 'loaders', required: { clip_name: files('clip_vision') }, output: ['CLIP_VISION'] },
  StyleModelLoader: { display: 'Load Style Model', category: 'loaders', required: { style_model_name: files('style_models') }, output: ['STYLE_MODEL'] },
  UpscaleModelLoader: {
    display: 'Load Upscale Model',
    category: 'loaders',
    module: 'comfy_extras.nodes_upscale_model',
    required: { model_name: files('upscale_models') },
    output: ['UPSCALE_MODEL']
  },
  CLIPSetLastLayer: { display: 'CLIP Set Last Layer', category: 'conditioning', required: { clip: link('CLIP'), stop_at_clip_layer: int(-1, -24, -1, 1) }, output: ['CLIP'] },

  // conditioning
  CLIPTextEncode: {
    display: 'CLIP Text Encode (Prompt)',
    category: 'conditioning',
    description: 'Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images.',
    aliases: ['text', 'prompt', 'text prompt', 'positive prompt', 'negative prompt', 'encode text', 'text encoder', 'encode prompt'],
    required: {
      text: ['STRING', { multiline: true, dynamicPrompts: true, tooltip: 'The text to be encoded.' }],
      clip: link('CLIP', { tooltip: 'The CLIP model used for encoding the text.' })
    },
    output: ['CONDITIONING'],
    tooltips: ['A conditioning containing the embedded text used to guide the diffusion model.']
  },
  ConditioningCombine: { display: 'Conditioning (Combine)', category: 'conditioning', required: { conditioning_1: cond(), conditioning_2: cond() }, output: ['CONDITIONING'] },
  ConditioningAverage: {
    display: 'Conditioning (Average)',
    category: 'conditioning',
    required: { conditioning_to: cond(), conditioning_from: cond(), conditioning_to_strength: float(1, 0, 1, 0.01) },
    output: ['CONDITIONING']
  },
  ConditioningConcat: { display: 'Conditioning (Concat)', category: 'conditioning', required: { conditioning_to: cond(), conditioning_from: cond() }, output: ['CONDITIONING'] },
  ConditioningSetArea: {
    display: 'Conditioning (Set Area)',
    category: 'conditioning',
    required: { conditioning: cond(), width: size(64, 8, 64), height: size(64, 8, 64), x: int(0, 0, MAX_RESOLUTION, 8), y: int(0, 0, MAX_RESOLUTION, 8), strength: float(1, 0, 10, 0.01) },
    output: ['CONDITIONING']
  },
  ConditioningSetAreaPercentage: {
    display: 'Conditioning (Set Area with Percentage)',
    category: 'conditioning',
    required: { conditioning: cond(), width: float(1, 0, 1, 0.01), height: float(1, 0, 1, 0.01), x: float(0, 0, 1, 0.01), y: float(0, 0, 1, 0.01), strength: float(1, 0, 10, 0.01) },
    output: ['CONDITIONING']
  },
  ConditioningSetMask: {
    display: 'Conditioning (Set Mask)',
    category: 'conditioning',
    required: { conditioning: cond(), mask: link('MASK'), strength: float(1, 0, 10, 0.01), set_cond_area: choice(['default', 'mask bounds']) },
    output: ['CONDITIONING']
  },
  ConditioningZeroOut: { display: 'ConditioningZeroOut', category: 'advanced/conditioning', required: { conditioning: cond() }, output: ['CONDITIONING'] },
  ConditioningSetTimestepRange: {
    display: 'ConditioningSetTimestepRange',
    category: 'advanced/conditioning',
    required: { conditioning: cond(), start: float(0, 0, 1, 0.001), end: float(1, 0, 1, 0.001) },
    output: ['CONDITIONING']
  },
  ControlNetApply: {
    display: 'Apply ControlNet (OLD)',
    category: 'conditioning/controlnet',
    deprecated: true,
    required: { conditioning: cond(), control_net: link('CONTROL_NET'), image: link('IMAGE'), strength: float(1, 0, 10, 0.01) },
    output: ['CONDITIONING']
  },
  ControlNetApplyAdvanced: {
    display: 'Apply ControlNet',
    category: 'conditioning/controlnet',
    aliases: ['controlnet', 'apply controlnet', 'use controlnet', 'control net'],
    required: {
      positive: cond(),
      negative: cond(),
      control_net: link('CONTROL_NET'),
      image: link('IMAGE'),
      strength: float(1, 0, 10, 0.01),
      start_percent: float(0, 0, 1, 0.001),
      end_percent: float(1, 0, 1, 0.001)
    },
    optional: { vae: link('VAE') },
    output: ['CONDITIONING', 'CONDITIONING'],
    names: ['positive', 'negative']
  },
  CLIPVisionEncode: {
    display: 'CLIP Vision Encode',
    category: 'conditioning',
    required: { clip_vision: link('CLIP_VISION'), image: link('IMAGE'), crop: choice(['center', 'none']) },
    output: ['CLIP_VISION_OUTPUT']
  },
  StyleModelApply: {
    display: 'Apply Style Model',
    category: 'conditioning/style_model',
    required: { conditioning: cond(), style_model: link('STYLE_MODEL'), clip_vision_output: link('CLIP_VISION_OUTPUT'), strength: float(1, 0, 10, 0.001), strength_type: choice(['multiply', 'attn_bias']) },
    output: ['CONDITIONING']
  },
  InpaintModelConditioning: {
    display: 'InpaintModelConditioning',
    category: 'conditioning/inpaint',
    required: { positive: cond(), negative: cond(), vae: link('VAE'), pixels: link('IMAGE'), mask: link('MASK'), noise_mask: bool(true) },
    ...CONDITIONING_PAIR_AND_LATENT
  },
  FluxGuidance: {
    display: 'FluxGuidance',
    category: 'advanced/conditioning/flux',
    module: 'comfy_extras.nodes_flux',
    required: { conditioning: cond(), guidance: float(3.5, 0, 100, 0.1) },
    output: ['CONDITIONING']
  },

  // latent
  EmptyLatentImage: {
    display: 'Empty Latent Image',
    category: 'latent',
    description: 'Create a new batch of empty latent images to be denoised via sampling.',
    aliases: ['empty', 'empty latent', 'new latent', 'create latent', 'blank latent', 'blank'],
    required: {
      width: int(512, 16, MAX_RESOLUTION, 8, { tooltip: 'The width of the latent images in pixels.' }),
      height: int(512, 16, MAX_RESOLUTION, 8, { tooltip: 'The height of the latent images in pixels.' }),
      batch_size: int(1, 1, 4096, undefined, { tooltip: 'The number of latent images in the batch.' })
    },
    output: ['LATENT'],
    tooltips: ['The empty latent image batch.']
  },
  EmptySD3LatentImage: {
    display: 'EmptySD3LatentImage',
    category: 'latent/sd3',
    module: 'comfy_extras.nodes_sd3',
    required: { width: size(1024, 16), height: size(1024, 16), batch_size: int(1, 1, 4096) },
    output: ['LATENT']
  },
  VAEDecode: {
    display: 'VAE Decode',
    category: 'latent',
    description: 'Decodes latent images back into pixel space images.',
    aliases: ['decode', 'decode latent', 'latent to image', 'render latent'],
    required: { samples: link('LATENT', { tooltip: 'The latent to be decoded.' }), vae: link('VAE', { tooltip: 'The VAE model used for decoding the latent.' }) },
    output: ['IMAGE'],
    tooltips: ['The decoded image.']
  },
  VAEEncode: {
    display: 'VAE Encode',
    category: 'latent',
    aliases: ['encode', 'encode image', 'image to latent'],
    required: { pixels: link('IMAGE'), vae: link('VAE') },
    output: ['LATENT']
  },
  VAEDecodeTiled: { display: 'VAE Decode (Tiled)', category: '_for_testing', required: tiled('samples', 'LATENT', 32, 'decode'), output: ['IMAGE'] },
  VAEEncodeTiled: { display: 'VAE Encode (Tiled)', category: '_for_testing', required: tiled('pixels', 'IMAGE', 64, 'encode'), output: ['LATENT'] },
  VAEEncodeForInpaint: {
    display: 'VAE Encode (for Inpainting)',
    category: 'latent/inpaint',
    required: { pixels: link('IMAGE'), vae: link('VAE'), mask: link('MASK'), grow_mask_by: int(6, 0, 64, 1) },
    output: ['LATENT']
  },
  SetLatentNoiseMask: { display: 'Set Latent Noise Mask', category: 'latent/inpaint', required: { samples: link('LATENT'), mask: link('MASK') }, output: ['LATENT'] },
  LatentUpscale: {
    display: 'Upscale Latent',
    category: 'latent',
    required: { samples: link('LATENT'), upscale_method: choice(LATENT_UPSCALE), width: int(512, 0, MAX_RESOLUTION, 8), height: int(512, 0, MAX_RESOLUTION, 8), crop: choice(CROP) },
    output: ['LATENT']
  },
  LatentUpscaleBy: {
    display: 'Upscale Latent By',
    category: 'latent',
    required: { samples: link('LATENT'), upscale_method: choice(LATENT_UPSCALE), scale_by: float(1.5, 0.01, 8, 0.01) },
    output: ['LATENT']
  },
  LatentComposite: {
    display: 'Latent Composite',
    category: 'latent',
    required: { samples_to: link('LATENT'), samples_from: link('LATENT'), x: int(0, 0, MAX_RESOLUTION, 8), y: int(0, 0, MAX_RESOLUTION, 8), feather: int(0, 0, MAX_RESOLUTION, 8) },
    output: ['LATENT']
  },
  LatentBlend: {
    display: 'Latent Blend',
    category: '_for_testing',
    required: { samples1: link('LATENT'), samples2: link('LATENT'), blend_factor: float(0.5, 0, 1, 0.01) },
    output: ['LATENT']
  },
  LatentCrop: {
    display: 'Crop Latent',
    category: 'latent/transform',
    required: { samples: link('LATENT'), width: size(512, 8, 64), height: size(512, 8, 64), x: int(0, 0, MAX_RESOLUTION, 8), y: int(0, 0, MAX_RESOLUTION, 8) },
    output: ['LATENT']
  },
  LatentFlip: { display: 'Flip Latent', category: 'latent/transform', required: { samples: link('LATENT'), flip_method: choice(['x-axis: vertically', 'y-axis: horizontally']) }, output: ['LATENT'] },
  LatentRotate: { display: 'Rotate Latent', category: 'latent/transform', required: { samples: link('LATENT'), rotation: choice(['none', '90 degrees', '180 degrees', '270 degrees']) }, output: ['LATENT'] },
  LatentFromBatch: {
    display: 'Latent From Batch',
    category: 'latent/batch',
    required: { samples: link('LATENT'), batch_index: int(0, 0, 63), length: int(1, 1, 64) },
    output: ['LATENT']
  },
  RepeatLatentBatch: { display: 'Repeat Latent Batch', category: 'latent/batch', required: { samples: link('LATENT'), amount: int(1, 1, 64) }, output: ['LATENT'] },

  EmptyHunyuanLatentVideo: {
    display: 'Empty HunyuanVideo 1.0 Latent',
    category: 'latent/video',
    module: 'comfy_extras.nodes_hunyuan',
    required: { width: size(848, 16), height: size(480, 16), length: int(25, 1, MAX_RESOLUTION, 4), batch_size: int(1, 1, 4096) },
    output: ['LATENT']
  },
  WanImageToVideo: {
    display: 'WanImageToVideo',
    category: 'conditioning/video_models',
    module: 'comfy_extras.nodes_wan',
    required: { positive: cond(), negative: cond(), vae: link('VAE'), width: size(832, 16), height: size(480, 16), length: int(81, 1, MAX_RESOLUTION, 4), batch_size: int(1, 1, 4096) },
    optional: { clip_vision_output: link('CLIP_VISION_OUTPUT'), start_image: link('IMAGE') },
    ...CONDITIONING_PAIR_AND_LATENT
  },

  // sampling
  ModelSamplingSD3: {
    display: 'ModelSamplingSD3',
    category: 'advanced/model',
    module: 'comfy_extras.nodes_model_advanced',
    required: { model: link('MODEL'), shift: float(3, 0, 100, 0.01) },
    output: ['MODEL']
  },
  KSampler: {
    display: 'KSampler',
    category: 'sampling',
    description: 'Uses the provided model, positive and negative conditioning to denoise the latent image.',
    aliases: ['sampler', 'sample', 'generate', 'denoise', 'diffuse', 'txt2img', 'img2img'],
    required: {
      model: link('MODEL', { tooltip: 'The model used for denoising the input latent.' }),
      seed: int(0, 0, MAX_SEED, undefined, { control_after_generate: true, tooltip: 'The random seed used for creating the noise.' }),
      steps: int(20, 1, 10000, undefined, { tooltip: 'The number of steps used in the denoising process.' }),
      cfg: float(8, 0, 100, 0.1, { round: 0.01, tooltip: 'The Classifier-Free Guidance scale balances creativity and adherence to the prompt.' }),
      sampler_name: choice(SAMPLERS, { tooltip: 'The algorithm used when sampling, this can affect the quality, speed, and style of the generated output.' }),
      scheduler: choice(SCHEDULERS, { tooltip: 'The scheduler controls how noise is gradually removed to form the image.' }),
      positive: link('CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to include in the image.' }),
      negative: link('CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to exclude from the image.' }),
      latent_image: link('LATENT', { tooltip: 'The latent image to denoise.' }),
      denoise: float(1, 0, 1, 0.01, { tooltip: 'The amount of denoising applied, lower values will maintain the structure of the initial image allowing for image to image sampling.' })
    },
    output: ['LATENT'],
    tooltips: ['The denoised latent.']
  },
  KSamplerAdvanced: {
    display: 'KSampler (Advanced)',
    category: 'sampling',
    required: {
      model: link('MODEL'),
      add_noise: choice(['enable', 'disable']),
      noise_seed: seed(),
      steps: int(20, 1, 10000),
      cfg: float(8, 0, 100, 0.1, { round: 0.01 }),
      sampler_name: choice(SAMPLERS),
      scheduler: choice(SCHEDULERS),
      positive: cond(),
      negative: cond(),
      latent_image: link('LATENT'),
      start_at_step: int(0, 0, 10000),
      end_at_step: int(10000, 0, 10000),
      return_with_leftover_noise: choice(['disable', 'enable'])
    },
    output: ['LATENT']
  },
  KSamplerSelect: { display: 'KSamplerSelect', category: 'sampling/custom_sampling/samplers', module: 'comfy_extras.nodes_custom_sampler', required: { sampler_name: choice(SAMPLERS) }, output: ['SAMPLER'] },
  BasicScheduler: {
    display: 'BasicScheduler',
    category: 'sampling/custom_sampling/schedulers',
    module: 'comfy_extras.nodes_custom_sampler',
    required: { model: link('MODEL'), scheduler: choice(SCHEDULERS), steps: int(20, 1, 10000), denoise: float(1, 0, 1, 0.01) },
    output: ['SIGMAS']
  },
  RandomNoise: { display: 'RandomNoise', category: 'sampling/custom_sampling/noise', module: 'comfy_extras.nodes_custom_sampler', required: { noise_seed: seed() }, output: ['NOISE'] },
  BasicGuider: { display: 'BasicGuider', category: 'sampling/custom_sampling/guiders', module: 'comfy_extras.nodes_custom_sampler', required: { model: link('MODEL'), conditioning: cond() }, output: ['GUIDER'] },
  CFGGuider: {
    display: 'CFGGuider',
    category: 'sampling/custom_sampling/guiders',
    module: 'comfy_extras.nodes_custom_sampler',
    required: { model: link('MODEL'), positive: cond(), negative: cond(), cfg: float(8, 0, 100, 0.1, { round: 0.01 }) },
    output: ['GUIDER']
  },
  SamplerCustomAdvanced: {
    display: 'SamplerCustomAdvanced',
    category: 'sampling/custom_sampling',
    module: 'comfy_extras.nodes_custom_sampler',
    required: { noise: link('NOISE'), guider: link('GUIDER'), sampler: link('SAMPLER'), sigmas: link('SIGMAS'), latent_image: link('LATENT') },
    output: ['LATENT', 'LATENT'],
    names: ['output', 'denoised_output']
  },

  // image
  SaveImage: {
    display: 'Save Image',
    category: 'image',
    description: 'Saves the input images to your ComfyUI output directory.',
    aliases: ['save', 'save image', 'export image', 'output image', 'write image', 'download'],
    required: {
      images: link('IMAGE', { tooltip: 'The images to save.' }),
      filename_prefix: text('ComfyUI', { tooltip: PREFIX_TOOLTIP })
    },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  PreviewImage: {
    display: 'Preview Image',
    category: 'image',
    description: 'Saves the input images to your ComfyUI output directory.',
    aliases: ['preview', 'preview image', 'show image', 'view image', 'display image', 'image viewer'],
    required: { images: link('IMAGE') },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  SaveImageWebsocket: {
    display: 'SaveImageWebsocket',
    category: 'api node/image',
    module: 'custom_nodes.websocket_image_save',
    required: { images: link('IMAGE') },
    outputNode: true
  },
  SaveAnimatedPNG: {
    display: 'SaveAnimatedPNG',
    category: 'image/animation',
    module: 'comfy_extras.nodes_images',
    required: { images: link('IMAGE'), filename_prefix: text('ComfyUI'), fps: float(6, 0.01, 1000, 0.01), compress_level: int(4, 0, 9) },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  SaveAnimatedWEBP: {
    display: 'SaveAnimatedWEBP',
    category: 'image/animation',
    module: 'comfy_extras.nodes_images',
    required: {
      images: link('IMAGE'),
      filename_prefix: text('ComfyUI'),
      fps: float(6, 0.01, 1000, 0.01),
      lossless: bool(true),
      quality: int(80, 0, 100),
      method: choice(Object.keys(WEBP_METHODS))
    },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  LoadImage: {
    display: 'Load Image',
    category: 'image',
    aliases: ['load image', 'open image', 'import image', 'image input', 'upload image', 'read image', 'image loader'],
    required: { image: lists => [[...lists.uploads], { image_upload: true }] },
    output: ['IMAGE', 'MASK']
  },
  LoadImageMask: {
    display: 'Load Image (as Mask)',
    category: 'mask',
    aliases: ['import mask', 'alpha mask', 'channel mask'],
    required: { image: lists => [[...lists.uploads], { image_upload: true }], channel: choice(['alpha', 'red', 'green', 'blue']) },
    output: ['MASK']
  },
  EmptyImage: {
    display: 'EmptyImage',
    category: 'image',
    required: { width: size(512, 1, 1), height: size(512, 1, 1), batch_size: int(1, 1, 4096), color: int(0, 0, 0xffffff, 1, { display: 'color' }) },
    output: ['IMAGE']
  },
  ImageScale: {
    display: 'Upscale Image',
    category: 'image/upscaling',
    aliases: ['resize', 'resize image', 'scale image', 'image resize', 'zoom', 'zoom in', 'change size'],
    required: { image: link('IMAGE'), upscale_method: choice(UPSCALE), width: int(512, 0, MAX_RESOLUTION, 1), height: int(512, 0, MAX_RESOLUTION, 1), crop: choice(CROP) },
    output: ['IMAGE']
  },
  ImageScaleBy: {
    display: 'Upscale Image By',
    category: 'image/upscaling',
    required: { image: link('IMAGE'), upscale_method: choice(UPSCALE), scale_by: float(1, 0.01, 8, 0.01) },
    output: ['IMAGE']
  },
  ImageScaleToTotalPixels: {
    display: 'Scale Image to Total Pixels',
    category: 'image/upscaling',
    module: 'comfy_extras.nodes_post_processing',
    required: { image: link('IMAGE'), upscale_method: choice(UPSCALE), megapixels: float(1, 0.01, 16, 0.01) },
    output: ['IMAGE']
  },
  ImageUpscaleWithModel: {
    display: 'Upscale Image (using Model)',
    category: 'image/upscaling',
    module: 'comfy_extras.nodes_upscale_model',
    required: { upscale_model: link('UPSCALE_MODEL'), image: link('IMAGE') },
    output: ['IMAGE']
  },
  ImageInvert: { display: 'Invert Image', category: 'image', aliases: ['reverse colors'], required: { image: link('IMAGE') }, output: ['IMAGE'] },
  ImageBatch: { display: 'Batch Images', category: 'image', aliases: ['combine images', 'merge images', 'stack images'], required: { image1: link('IMAGE'), image2: link('IMAGE') }, output: ['IMAGE'] },
  ImagePadForOutpaint: {
    display: 'Pad Image for Outpainting',
    category: 'image',
    aliases: ['extend canvas', 'expand image'],
    required: {
      image: link('IMAGE'),
      left: int(0, 0, MAX_RESOLUTION, 8),
      top: int(0, 0, MAX_RESOLUTION, 8),
      right: int(0, 0, MAX_RESOLUTION, 8),
      bottom: int(0, 0, MAX_RESOLUTION, 8),
      feathering: int(40, 0, MAX_RESOLUTION, 1)
    },
    output: ['IMAGE', 'MASK']
  },
  ImageCrop: {
    display: 'Image Crop',
    category: 'image/transform',
    module: 'comfy_extras.nodes_images',
    required: { image: link('IMAGE'), width: size(512, 1, 1), height: size(512, 1, 1), x: int(0, 0, MAX_RESOLUTION, 1), y: int(0, 0, MAX_RESOLUTION, 1) },
    output: ['IMAGE']
  },
  ImageBlend: {
    display: 'Image Blend',
    category: 'image/postprocessing',
    module: 'comfy_extras.nodes_post_processing',
    required: {
      image1: link('IMAGE'),
      image2: link('IMAGE'),
      blend_factor: float(0.5, 0, 1, 0.01),
      blend_mode: choice(['normal', 'multiply', 'screen', 'overlay', 'soft_light', 'difference'])
    },
    output: ['IMAGE']
  },

  ImageFlip: {
    display: 'Image Flip',
    category: 'image/transform',
    module: 'comfy_extras.nodes_images',
    required: { image: link('IMAGE'), flip_method: choice(['x-axis: vertically', 'y-axis: horizontally']) },
    output: ['IMAGE']
  },
  ImageRotate: {
    display: 'Image Rotate',
    category: 'image/transform',
    module: 'comfy_extras.nodes_images',
    required: { image: link('IMAGE'), rotation: choice(['none', '90 degrees', '180 degrees', '270 degrees']) },
    output: ['IMAGE']
  },
  GetImageSize: {
    display: 'Get Image Size',
    category: 'image',
    module: 'comfy_extras.nodes_images',
    description: 'Returns width and height of the image, and passes it through unchanged.',
    required: { image: link('IMAGE') },
    output: ['INT', 'INT', 'INT'],
    names: ['width', 'height', 'batch_size']
  },
  RepeatImageBatch: { display: 'RepeatImageBatch', category: 'image/batch', module: 'comfy_extras.nodes_images', required: { image: link('IMAGE'), amount: int(1, 1, 4096) }, output: ['IMAGE'] },
  ImageFromBatch: {
    display: 'ImageFromBatch',
    category: 'image/batch',
    module: 'comfy_extras.nodes_images',
    required: { image: link('IMAGE'), batch_index: int(0, 0, 4095), length: int(1, 1, 4096) },
    output: ['IMAGE']
  },
  ImageCompositeMasked: {
    display: 'ImageCompositeMasked',
    category: 'image',
    module: 'comfy_extras.nodes_mask',
    aliases: ['overlay', 'layer', 'paste image', 'images composition'],
    required: { destination: link('IMAGE'), source: link('IMAGE'), x: int(0, 0, MAX_RESOLUTION, 1), y: int(0, 0, MAX_RESOLUTION, 1), resize_source: bool(false) },
    optional: { mask: link('MASK') },
    output: ['IMAGE']
  },
  ImageBlur: {
    display: 'Image Blur',
    category: 'image/postprocessing',
    module: 'comfy_extras.nodes_post_processing',
    required: { image: link('IMAGE'), blur_radius: int(1, 1, 31, 1), sigma: float(1, 0.1, 10, 0.1) },
    output: ['IMAGE']
  },
  ImageSharpen: {
    display: 'Image Sharpen',
    category: 'image/postprocessing',
    module: 'comfy_extras.nodes_post_processing',
    required: { image: link('IMAGE'), sharpen_radius: int(1, 1, 31, 1), sigma: float(1, 0.1, 10, 0.01), alpha: float(1, 0, 5, 0.01) },
    output: ['IMAGE']
  },
  ImageQuantize: {
    display: 'Image Quantize',
    category: 'image/postprocessing',
    module: 'comfy_extras.nodes_post_processing',
    required: { image: link('IMAGE'), colors: int(256, 1, 256, 1), dither: choice(['none', 'floyd-steinberg', 'bayer-2', 'bayer-4', 'bayer-8', 'bayer-16']) },
    output: ['IMAGE']
  },
  Canny: {
    display: 'Canny',
    category: 'image/preprocessors',
    module: 'comfy_extras.nodes_canny',
    required: { image: link('IMAGE'), low_threshold: float(0.4, 0.01, 0.99, 0.01), high_threshold: float(0.8, 0.01, 0.99, 0.01) },
    output: ['IMAGE']
  },

  // audio
  EmptyLatentAudio: {
    display: 'Empty Latent Audio',
    category: 'latent/audio',
    module: 'comfy_extras.nodes_audio',
    required: { seconds: float(47.6, 1, 1000, 0.1), batch_size: int(1, 1, 4096, undefined, { tooltip: 'The number of latent images in the batch.' }) },
    output: ['LATENT']
  },
  VAEDecodeAudio: { display: 'VAE Decode Audio', category: 'latent/audio', module: 'comfy_extras.nodes_audio', required: { samples: link('LATENT'), vae: link('VAE') }, output: ['AUDIO'] },
  VAEEncodeAudio: { display: 'VAE Encode Audio', category: 'latent/audio', module: 'comfy_extras.nodes_audio', required: { audio: link('AUDIO'), vae: link('VAE') }, output: ['LATENT'] },
  SaveAudio: {
    display: 'Save Audio (FLAC)',
    category: 'audio',
    module: 'comfy_extras.nodes_audio',
    required: { audio: link('AUDIO'), filename_prefix: text('audio/ComfyUI') },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  PreviewAudio: { display: 'Preview Audio', category: 'audio', module: 'comfy_extras.nodes_audio', required: { audio: link('AUDIO') }, hidden: SAVE_HIDDEN, outputNode: true },

  // video
  SaveWEBM: {
    display: 'SaveWEBM',
    category: 'image/video',
    module: VIDEO_MODULE,
    aliases: ['export webm'],
    experimental: true,
    required: {
      images: link('IMAGE'),
      filename_prefix: text('ComfyUI'),
      codec: choice(['vp9', 'av1']),
      fps: float(24, 0.01, 1000, 0.01),
      crf: float(32, 0, 63, 1, { tooltip: 'Higher crf means lower quality with a smaller file size, lower crf means higher quality higher filesize.' })
    },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  SaveVideo: {
    display: 'Save Video',
    category: 'image/video',
    module: VIDEO_MODULE,
    description: 'Saves the input images to your ComfyUI output directory.',
    aliases: ['export video'],
    required: {
      video: link('VIDEO', { tooltip: 'The video to save.' }),
      filename_prefix: text('video/ComfyUI', { tooltip: PREFIX_TOOLTIP }),
      format: choice(['auto', 'mp4'], { default: 'auto', tooltip: 'The format to save the video as.' }),
      codec: choice(['auto', 'h264'], { default: 'auto', tooltip: 'The codec to use for the video.' })
    },
    hidden: SAVE_HIDDEN,
    outputNode: true
  },
  CreateVideo: {
    display: 'Create Video',
    category: 'image/video',
    module: VIDEO_MODULE,
    description: 'Create a video from images.',
    aliases: ['images to video'],
    required: { images: link('IMAGE', { tooltip: 'The images to create a video from.' }), fps: float(30, 1, 120, 1) },
    optional: { audio: link('AUDIO', { tooltip: 'The audio to add to the video.' }) },
    output: ['VIDEO']
  },
  GetVideoComponents: {
    display: 'Get Video Components',
    category: 'image/video',
    module: VIDEO_MODULE,
    description: 'Extracts all components from a video: frames, audio, and framerate.',
    aliases: ['extract frames', 'split video', 'video to images', 'demux'],
    required: { video: link('VIDEO', { tooltip: 'The video to extract components from.' }) },
    output: ['IMAGE', 'AUDIO', 'FLOAT'],
    names: ['images', 'audio', 'fps']
  },

  // mask
  ImageToMask: { display: 'Convert Image to Mask', category: 'mask', module: 'comfy_extras.nodes_mask', required: { image: link('IMAGE'), channel: choice(['red', 'green', 'blue', 'alpha']) }, output: ['MASK'] },
  MaskToImage: { display: 'Convert Mask to Image', category: 'mask', module: 'comfy_extras.nodes_mask', required: { mask: link('MASK') }, output: ['IMAGE'] },
  SolidMask: {
    display: 'SolidMask',
    category: 'mask',
    module: 'comfy_extras.nodes_mask',
    required: { value: float(1, 0, 1, 0.01), width: size(512, 1, 1), height: size(512, 1, 1) },
    output: ['MASK']
  },
  InvertMask: { display: 'InvertMask', category: 'mask', module: 'comfy_extras.nodes_mask', required: { mask: link('MASK') }, output: ['MASK'] },
  CropMask: {
    display: 'CropMask',
    category: 'mask',
    module: 'comfy_extras.nodes_mask',
    required: { mask: link('MASK'), x: int(0, 0, MAX_RESOLUTION, 1), y: int(0, 0, MAX_RESOLUTION, 1), width: size(512, 1, 1), height: size(512, 1, 1) },
    output: ['MASK']
  },
  FeatherMask: {
    display: 'FeatherMask',
    category: 'mask',
    module: 'comfy_extras.nodes_mask',
    required: { mask: link('MASK'), left: int(0, 0, MAX_RESOLUTION, 1), top: int(0, 0, MAX_RESOLUTION, 1), right: int(0, 0, MAX_RESOLUTION, 1), bottom: int(0, 0, MAX_RESOLUTION, 1) },
    output: ['MASK']
  },
  MaskComposite: {
    display: 'MaskComposite',
    category: 'mask',
    module: 'comfy_extras.nodes_mask',
    required: { destination: link('MASK'), source: link('MASK'), x: int(0, 0, MAX_RESOLUTION, 1), y: int(0, 0, MAX_RESOLUTION, 1), operation: choice(['multiply', 'add', 'subtract', 'and', 'or', 'xor']) },
    output: ['MASK']
  },
  GrowMask: {
    display: 'GrowMask',
    category: 'mask',
    module: 'comfy_extras.nodes_mask',
    required: { mask: link('MASK'), expand: int(0, -MAX_RESOLUTION, MAX_RESOLUTION, 1), tapered_corners: bool(true) },
    output: ['MASK']
  },
  ThresholdMask: { display: 'ThresholdMask', category: 'mask', module: 'comfy_extras.nodes_mask', required: { mask: link('MASK'), value: float(0.5, 0, 1, 0.01) }, output: ['MASK'] },

  // primitives
  PrimitiveInt: { display: 'Int', category: 'utils/primitive', module: 'comfy_extras.nodes_primitive', required: { value: int(0, -INT_MAX, INT_MAX, undefined, { control_after_generate: true }) }, output: ['INT'] },
  PrimitiveFloat: { display: 'Float', category: 'utils/primitive', module: 'comfy_extras.nodes_primitive', required: { value: float(0, -INT_MAX, INT_MAX, 0.1) }, output: ['FLOAT'] },
  PrimitiveString: { display: 'String', category: 'utils/primitive', module: 'comfy_extras.nodes_primitive', required: { value: ['STRING', {}] }, output: ['STRING'] },
  PrimitiveStringMultiline: { display: 'String (Multiline)', category: 'utils/primitive', module: 'comfy_extras.nodes_primitive', required: { value: ['STRING', { multiline: true }] }, output: ['STRING'] },
  PrimitiveBoolean: { display: 'Boolean', category: 'utils/primitive', module: 'comfy_extras.nodes_primitive', required: { value: bool(false) }, output: ['BOOLEAN'] }
}

const resolve = (def: InputDef, lists: Lists): InputSpec => typeof def === 'function' ? def(lists) : structuredClone(def)

function infoOf (name: string, spec: NodeSpec, lists: Lists): NodeInfo {
  const output = spec.output ?? []
  const required = Object.fromEntries(Object.entries(spec.required).map(([key, def]) => [key, resolve(def, lists)]))
  const input: NodeInfo['input'] = { required }
  const order: NodeInfo['input_order'] = { required: Object.keys(required) }
  if (spec.optional !== undefined) {
    input.optional = Object.fromEntries(Object.entries(spec.optional).map(([key, def]) => [key, resolve(def, lists)]))
    order.optional = Object.keys(input.optional)
  }
  if (spec.hidden !== undefined) {
    input.hidden = { ...spec.hidden }
    order.hidden = Object.keys(spec.hidden)
  }
  const info: NodeInfo = {
    input,
    input_order: order,
    is_input_list: false,
    output,
    output_is_list: output.map(() => false),
    output_name: spec.names ?? output,
    name,
    display_name: spec.display,
    description: spec.description ?? '',
    python_module: spec.module ?? 'nodes',
    category: spec.category,
    output_node: spec.outputNode ?? false
  } as NodeInfo
  if (spec.tooltips !== undefined) info.output_tooltips = spec.tooltips
  if (spec.deprecated === true) info.deprecated = true
  if (spec.experimental === true) info.experimental = true
  info.search_aliases = spec.aliases ?? []
  return info
}

/** Classes that take a file name the node checks itself (ComfyUI's VALIDATE_INPUTS), not against the choice list. */
export const CUSTOM_VALIDATED: Readonly<Record<string, string>> = { LoadImage: 'image', LoadImageMask: 'image' }

/** The node set of one simulator instance. */
export class Catalog {
  private readonly base: Record<string, NodeInfo>

  constructor (readonly models: ModelFolders) {
    this.base = this.objectInfo([])
  }

  has (classType: string): boolean {
    return Object.hasOwn(SPECS, classType)
  }

  /** The node info used for validation (upload lists empty: those inputs are custom-validated). */
  get (classType: string): NodeInfo | undefined {
    return Object.hasOwn(this.base, classType) ? this.base[classType] : undefined
  }

  /** `/api/object_info` for an account whose uploads are `uploads`. */
  objectInfo (uploads: string[]): Record<string, NodeInfo> {
    const lists: Lists = { models: this.models, uploads: [...uploads].sort() }
    return Object.fromEntries(Object.entries(SPECS).map(([name, spec]) => [name, infoOf(name, spec, lists)]))
  }
}

/** Whether a class is an output node (depends on nothing configurable). */
export function isOutputNode (classType: unknown): boolean {
  return typeof classType === 'string' && Object.hasOwn(SPECS, classType) && SPECS[classType].outputNode === true
}
