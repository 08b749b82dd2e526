/**
 * The simulator's node set (what `GET /api/object_info` answers) and ComfyUI-style prompt validation
 * (what `POST /api/prompt` answers with 400). Cloud runs ComfyUI's own validator, so the error bodies
 * follow the local envelope (cloud-api-notes §1.4, §2.1; contract §5.4).
 */

export interface ApiNode {
  class_type?: unknown
  inputs?: Record<string, unknown>
  _meta?: { title?: unknown }
}
export type ApiPrompt = Record<string, ApiNode>

type InputOptions = Record<string, unknown>
/** ComfyUI's input spec: [type, options], where a combo's type is its list of choices. */
type InputSpec = [string | string[], InputOptions?]

export interface NodeInfo {
  input: { required: Record<string, InputSpec>, optional?: Record<string, InputSpec>, hidden?: Record<string, string> }
  input_order: { required: string[], optional?: string[] }
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
  deprecated: boolean
  experimental: boolean
  api_node: boolean
}

export const CHECKPOINTS = [
  'v1-5-pruned-emaonly.safetensors',
  'v1-5-pruned-emaonly-fp16.safetensors',
  'sd_xl_base_1.0.safetensors',
  'sd_xl_refiner_1.0.safetensors',
  'flux1-dev-fp8.safetensors',
  'sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors'
]

export const SAMPLERS = [
  'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'dpm_2', 'dpm_2_ancestral',
  'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu',
  'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm',
  'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'gradient_estimation', 'er_sde', 'ddim', 'uni_pc', 'uni_pc_bh2'
]

export const SCHEDULERS = ['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal']

const HIDDEN_PROMPT = { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' }

function node (name: string, fields: {
  display: string
  category: string
  description: string
  required: Record<string, InputSpec>
  hidden?: Record<string, string>
  output?: string[]
  tooltips?: string[]
  outputNode?: boolean
}): NodeInfo {
  const output = fields.output ?? []
  return {
    input: fields.hidden === undefined ? { required: fields.required } : { required: fields.required, hidden: fields.hidden },
    input_order: { required: Object.keys(fields.required) },
    output,
    output_is_list: output.map(() => false),
    output_name: output,
    name,
    display_name: fields.display,
    description: fields.description,
    python_module: 'nodes',
    category: fields.category,
    output_node: fields.outputNode ?? false,
    ...(fields.tooltips === undefined ? {} : { output_tooltips: fields.tooltips }),
    deprecated: false,
    experimental: false,
    api_node: false
  }
}

const size = (tooltip: string): InputSpec => ['INT', { default: 512, min: 16, max: 16384, step: 8, tooltip }]

export const NODES: Record<string, NodeInfo> = {
  CheckpointLoaderSimple: node('CheckpointLoaderSimple', {
    display: 'Load Checkpoint',
    category: 'loaders',
    description: 'Loads a checkpoint file: the diffusion model, its text encoder and its VAE.',
    required: { ckpt_name: [CHECKPOINTS, { tooltip: 'The checkpoint file to load.' }] },
    output: ['MODEL', 'CLIP', 'VAE'],
    tooltips: ['The model that denoises latents.', 'The text encoder for prompts.', 'The autoencoder between pixels and latents.']
  }),
  CLIPTextEncode: node('CLIPTextEncode', {
    display: 'CLIP Text Encode (Prompt)',
    category: 'conditioning',
    description: 'Turns a text prompt into conditioning that guides the sampler.',
    required: {
      text: ['STRING', { multiline: true, dynamicPrompts: true, tooltip: 'The text to encode.' }],
      clip: ['CLIP', { tooltip: 'The text encoder to use.' }]
    },
    output: ['CONDITIONING'],
    tooltips: ['Conditioning built from the text.']
  }),
  EmptyLatentImage: node('EmptyLatentImage', {
    display: 'Empty Latent Image',
    category: 'latent',
    description: 'Creates a batch of empty latent images to be denoised by a sampler.',
    required: {
      width: size('Width of the image in pixels.'),
      height: size('Height of the image in pixels.'),
      batch_size: ['INT', { default: 1, min: 1, max: 64, tooltip: 'How many images to make.' }]
    },
    output: ['LATENT'],
    tooltips: ['The empty latent batch.']
  }),
  KSampler: node('KSampler', {
    display: 'KSampler',
    category: 'sampling',
    description: 'Denoises a latent image step by step with the given model and conditioning.',
    required: {
      model: ['MODEL', { tooltip: 'The model used for denoising.' }],
      seed: ['INT', { default: 0, min: 0, max: 18446744073709551615, control_after_generate: true, tooltip: 'The random seed for the noise.' }],
      steps: ['INT', { default: 20, min: 1, max: 10000, tooltip: 'Number of denoising steps.' }],
      cfg: ['FLOAT', { default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01, tooltip: 'Classifier-free guidance scale.' }],
      sampler_name: [SAMPLERS, { tooltip: 'The sampling algorithm.' }],
      scheduler: [SCHEDULERS, { tooltip: 'How noise is removed across the steps.' }],
      positive: ['CONDITIONING', { tooltip: 'What the image should contain.' }],
      negative: ['CONDITIONING', { tooltip: 'What the image should avoid.' }],
      latent_image: ['LATENT', { tooltip: 'The latent image to denoise.' }],
      denoise: ['FLOAT', { default: 1.0, min: 0.0, max: 1.0, step: 0.01, tooltip: 'How much of the input is replaced by noise.' }]
    },
    output: ['LATENT'],
    tooltips: ['The denoised latent.']
  }),
  VAEDecode: node('VAEDecode', {
    display: 'VAE Decode',
    category: 'latent',
    description: 'Decodes latent images back into pixel images.',
    required: {
      samples: ['LATENT', { tooltip: 'The latent to decode.' }],
      vae: ['VAE', { tooltip: 'The VAE used for decoding.' }]
    },
    output: ['IMAGE'],
    tooltips: ['The decoded image.']
  }),
  SaveImage: node('SaveImage', {
    display: 'Save Image',
    category: 'image',
    description: 'Saves the input images to the output storage.',
    required: {
      images: ['IMAGE', { tooltip: 'The images to save.' }],
      filename_prefix: ['STRING', { default: 'ComfyUI', tooltip: 'The prefix for the saved file names.' }]
    },
    hidden: HIDDEN_PROMPT,
    outputNode: true
  }),
  PreviewImage: node('PreviewImage', {
    display: 'Preview Image',
    category: 'image',
    description: 'Shows the input images as temporary previews.',
    required: { images: ['IMAGE', { tooltip: 'The images to preview.' }] },
    hidden: HIDDEN_PROMPT,
    outputNode: true
  })
}

// ---------------------------------------------------------------------------------------------
// Validation

export interface PromptErrorDetail {
  type: string
  message: string
  details: string
  extra_info: Record<string, unknown>
}

export interface NodeError {
  errors: PromptErrorDetail[]
  dependent_outputs: string[]
  class_type: string
}

export type ValidationResult =
  | { ok: true, outputs: string[], nodeErrors: Record<string, NodeError> }
  | { ok: false, error: PromptErrorDetail, nodeErrors: Record<string, NodeError> }

const isLink = (value: unknown): value is unknown[] => Array.isArray(value)

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Coerces a widget value the way ComfyUI does (int(), float(), str()); undefined when it cannot. */
export function coerce (type: string, value: unknown): number | string | undefined {
  if (type === 'INT') {
    if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value)
    if (typeof value === 'boolean') return value ? 1 : 0
    if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) return Number(value)
    return undefined
  }
  if (type === 'FLOAT') {
    if (typeof value === 'number') return value
    if (typeof value === 'boolean') return value ? 1 : 0
    if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value)
    return undefined
  }
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value)
}

function pyRepr (value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value)
}

function validateValue (name: string, spec: InputSpec, value: unknown): PromptErrorDetail | undefined {
  const [type, options = {}] = spec
  const config = [type, options]
  if (Array.isArray(type)) {
    if (type.includes(value as string)) return undefined
    // ComfyUI does not echo long choice lists (model folders can hold hundreds of files).
    const long = type.length > 20
    return {
      type: 'value_not_in_list',
      message: 'Value not in list',
      details: `${name}: ${pyRepr(value)} not in ${long ? `(list of length ${type.length})` : `[${type.map(pyRepr).join(', ')}]`}`,
      extra_info: { input_name: name, input_config: long ? null : config, received_value: value }
    }
  }
  if (type !== 'INT' && type !== 'FLOAT' && type !== 'STRING') {
    return {
      type: 'invalid_input_type',
      message: `Input ${name} must be linked to a node that outputs ${type}`,
      details: `${name}, ${JSON.stringify(value)}`,
      extra_info: { input_name: name, input_config: config, received_value: value }
    }
  }
  const coerced = coerce(type, value)
  if (coerced === undefined) {
    return {
      type: 'invalid_input_type',
      message: `Failed to convert an input value to a ${type} value`,
      details: `${name}, ${JSON.stringify(value)}, cannot be read as ${type}`,
      extra_info: { input_name: name, input_config: config, received_value: value, exception_message: `cannot be read as ${type}` }
    }
  }
  if (typeof coerced === 'number') {
    if (typeof options.min === 'number' && coerced < options.min) {
      return {
        type: 'value_smaller_than_min',
        message: `Value ${coerced} smaller than min of ${options.min}`,
        details: name,
        extra_info: { input_name: name, input_config: config, received_value: value }
      }
    }
    if (typeof options.max === 'number' && coerced > options.max) {
      return {
        type: 'value_bigger_than_max',
        message: `Value ${coerced} bigger than max of ${options.max}`,
        details: name,
        extra_info: { input_name: name, input_config: config, received_value: value }
      }
    }
  }
  return undefined
}

/** The link errors of one input: shape, target node, slot and type. */
function validateLink (prompt: ApiPrompt, name: string, spec: InputSpec, link: unknown[]): PromptErrorDetail | undefined {
  const config = [spec[0], spec[1] ?? {}]
  const [source, slot] = link
  if (link.length !== 2 || typeof source !== 'string' || typeof slot !== 'number') {
    return {
      type: 'bad_linked_input',
      message: 'Bad linked input, must be a length-2 list of [node_id, slot_index]',
      details: name,
      extra_info: { input_name: name, input_config: config, received_value: link }
    }
  }
  const sourceInfo = prompt[source] === undefined ? undefined : NODES[prompt[source].class_type as string]
  const received = sourceInfo?.output[slot]
  if (received === undefined) {
    return {
      type: 'bad_linked_input',
      message: 'Bad linked input, the linked node or output slot does not exist',
      details: `${name}, [${JSON.stringify(source)}, ${slot}]`,
      extra_info: { input_name: name, input_config: config, received_value: link }
    }
  }
  if (received !== spec[0]) {
    return {
      type: 'return_type_mismatch',
      message: 'Return type mismatch between linked nodes',
      details: `${name}, received_type(${received}) mismatch input_type(${String(spec[0])})`,
      extra_info: { input_name: name, input_config: config, received_type: received, linked_node: link }
    }
  }
  return undefined
}

interface Checked { valid: boolean, errors: PromptErrorDetail[] }

/**
 * Validates a whole API prompt like ComfyUI's validate_prompt: every node must have a known class_type,
 * at least one output node must be selected, and each output's dependency tree must be valid. Outputs that
 * fail are dropped; if none is left the prompt is refused with `prompt_outputs_failed_validation`.
 */
export function validatePrompt (prompt: ApiPrompt, partialTargets?: string[]): ValidationResult {
  const outputs: string[] = []
  for (const [id, entry] of Object.entries(prompt)) {
    const title = isPlainObject(entry) && isPlainObject(entry._meta) && typeof entry._meta.title === 'string' ? entry._meta.title : undefined
    if (!isPlainObject(entry) || typeof entry.class_type !== 'string') {
      return {
        ok: false,
        nodeErrors: {},
        error: {
          type: 'missing_node_type',
          message: `Node '${title ?? `ID #${id}`}' has no class_type. The workflow may be corrupted or a custom node is missing.`,
          details: `Node ID '#${id}'`,
          extra_info: { node_id: id, class_type: null, node_title: title ?? null }
        }
      }
    }
    const info = NODES[entry.class_type]
    if (info === undefined) {
      return {
        ok: false,
        nodeErrors: {},
        error: {
          type: 'missing_node_type',
          message: `Node '${title ?? entry.class_type}' not found. The custom node may not be installed.`,
          details: `Node ID '#${id}'`,
          extra_info: { node_id: id, class_type: entry.class_type, node_title: title ?? entry.class_type }
        }
      }
    }
    if (info.output_node && (partialTargets === undefined || partialTargets.includes(id))) outputs.push(id)
  }
  if (outputs.length === 0) {
    return { ok: false, nodeErrors: {}, error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} } }
  }

  const checked = new Map<string, Checked>()
  const visiting: string[] = []
  const check = (id: string): Checked => {
    const done = checked.get(id)
    if (done !== undefined) return done
    if (visiting.includes(id)) {
      const cycle = visiting.slice(visiting.indexOf(id))
      const result = {
        valid: false,
        errors: [{
          type: 'dependency_cycle',
          message: 'Dependency cycle detected',
          details: [...cycle, id].map(n => `${n} (${String(prompt[n].class_type)})`).join(' -> '),
          extra_info: { node_id: id, cycle_nodes: cycle }
        }]
      }
      checked.set(id, result)
      return result
    }
    visiting.push(id)
    const entry = prompt[id]
    const info = NODES[entry.class_type as string]
    const inputs = isPlainObject(entry.inputs) ? entry.inputs : {}
    const errors: PromptErrorDetail[] = []
    let valid = true
    for (const [name, spec] of Object.entries(info.input.required)) {
      if (!(name in inputs)) {
        errors.push({ type: 'required_input_missing', message: 'Required input is missing', details: name, extra_info: { input_name: name } })
        continue
      }
      const value = inputs[name]
      if (isLink(value)) {
        const linkError = validateLink(prompt, name, spec, value)
        if (linkError !== undefined) errors.push(linkError)
        else if (!check(value[0] as string).valid) valid = false
        continue
      }
      const valueError = validateValue(name, spec, value)
      if (valueError !== undefined) errors.push(valueError)
    }
    visiting.pop()
    const result = checked.get(id) ?? { valid: true, errors: [] }
    result.valid = result.valid && valid && errors.length === 0
    result.errors = [...result.errors, ...errors]
    checked.set(id, result)
    return result
  }

  const dependencies = (id: string, seen = new Set<string>()): Set<string> => {
    if (seen.has(id)) return seen
    seen.add(id)
    const inputs = prompt[id]?.inputs
    for (const value of Object.values(isPlainObject(inputs) ? inputs : {})) {
      if (isLink(value) && typeof value[0] === 'string' && prompt[value[0]] !== undefined) dependencies(value[0], seen)
    }
    return seen
  }

  const good: string[] = []
  const nodeErrors: Record<string, NodeError> = {}
  const lines: string[] = []
  for (const output of outputs) {
    if (check(output).valid) {
      good.push(output)
      continue
    }
    for (const id of dependencies(output)) {
      const result = checked.get(id)
      if (result === undefined || result.valid || result.errors.length === 0) continue
      if (nodeErrors[id] === undefined) {
        nodeErrors[id] = { errors: result.errors, dependent_outputs: [], class_type: prompt[id].class_type as string }
        for (const error of result.errors) lines.push(`${error.message}: ${error.details}`)
      }
      nodeErrors[id].dependent_outputs.push(output)
    }
  }
  if (good.length === 0) {
    return {
      ok: false,
      nodeErrors,
      error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: lines.join('\n'), extra_info: {} }
    }
  }
  return { ok: true, outputs: good, nodeErrors }
}

/** Execution order: dependencies first, depth-first from each output in turn (like ComfyUI's executor). */
export function executionOrder (prompt: ApiPrompt, outputs: string[]): string[] {
  const order: string[] = []
  const visit = (id: string): void => {
    if (order.includes(id) || prompt[id] === undefined) return
    const inputs = prompt[id].inputs ?? {}
    for (const value of Object.values(inputs)) {
      if (isLink(value) && typeof value[0] === 'string') visit(value[0])
    }
    order.push(id)
  }
  for (const output of outputs) visit(output)
  return order
}

/** The output node ids of a prompt (for seeded jobs and history `outputs_to_execute`). */
export function outputNodes (prompt: ApiPrompt): string[] {
  return Object.keys(prompt).filter(id => NODES[prompt[id]?.class_type as string]?.output_node === true)
}
