/**
 * Local ComfyUI's model routes (`/models`, `/models/{folder}`, `/embeddings`) from what the cloud
 * knows: its model listing (`/api/experiment/models…`) or, where it has none, the choices of the
 * loader nodes in `/object_info` (issue 17). Pure: no I/O.
 */
import type { Json } from '../cloud/types.js'

/** The folders a local ComfyUI 0.18 lists at `/models`, in its order (folder_paths.py; observed finding 32). */
export const LOCAL_MODEL_FOLDERS = [
  'checkpoints', 'configs', 'loras', 'vae', 'text_encoders', 'diffusion_models', 'clip_vision', 'style_models',
  'embeddings', 'diffusers', 'vae_approx', 'controlnet', 'gligen', 'upscale_models', 'latent_upscale_models',
  'custom_nodes', 'hypernetworks', 'photomaker', 'classifiers', 'model_patches', 'audio_encoders'
]

/** Which input of which core loader node lists the files of which folder. */
const LOADER_INPUTS: Array<[node: string, input: string, folder: string]> = [
  ['CheckpointLoaderSimple', 'ckpt_name', 'checkpoints'],
  ['CheckpointLoader', 'ckpt_name', 'checkpoints'],
  ['CheckpointLoader', 'config_name', 'configs'],
  ['ImageOnlyCheckpointLoader', 'ckpt_name', 'checkpoints'],
  ['unCLIPCheckpointLoader', 'ckpt_name', 'checkpoints'],
  ['LoraLoader', 'lora_name', 'loras'],
  ['LoraLoaderModelOnly', 'lora_name', 'loras'],
  ['VAELoader', 'vae_name', 'vae'],
  ['CLIPLoader', 'clip_name', 'text_encoders'],
  ['DualCLIPLoader', 'clip_name1', 'text_encoders'],
  ['DualCLIPLoader', 'clip_name2', 'text_encoders'],
  ['TripleCLIPLoader', 'clip_name1', 'text_encoders'],
  ['TripleCLIPLoader', 'clip_name2', 'text_encoders'],
  ['TripleCLIPLoader', 'clip_name3', 'text_encoders'],
  ['UNETLoader', 'unet_name', 'diffusion_models'],
  ['CLIPVisionLoader', 'clip_name', 'clip_vision'],
  ['StyleModelLoader', 'style_model_name', 'style_models'],
  ['DiffusersLoader', 'model_path', 'diffusers'],
  ['ControlNetLoader', 'control_net_name', 'controlnet'],
  ['DiffControlNetLoader', 'control_net_name', 'controlnet'],
  ['GLIGENLoader', 'gligen_name', 'gligen'],
  ['UpscaleModelLoader', 'model_name', 'upscale_models'],
  ['HypernetworkLoader', 'hypernetwork_name', 'hypernetworks'],
  ['PhotoMakerLoader', 'photomaker_model_name', 'photomaker']
]

/** The choices of a combo input: `[[...choices], opts]` or the newer `["COMBO", {options: [...]}]`. */
function comboChoices (spec: unknown): string[] {
  if (!Array.isArray(spec)) return []
  const [type, options] = spec as [unknown, unknown]
  const values = Array.isArray(type)
    ? type
    : type === 'COMBO' && typeof options === 'object' && options !== null ? (options as { options?: unknown }).options : undefined
  return Array.isArray(values) ? values.filter((value): value is string => typeof value === 'string') : []
}

/** Folder → file names (sorted, as local lists them) from the loaders present in an `/object_info` answer. */
export function modelsFromObjectInfo (objectInfo: Json): Map<string, string[]> {
  const files = new Map<string, Set<string>>()
  for (const [node, input, folder] of LOADER_INPUTS) {
    const info = objectInfo[node] as { input?: { required?: Json, optional?: Json } } | undefined
    if (info === undefined) continue
    const spec = info.input?.required?.[input] ?? info.input?.optional?.[input]
    if (spec === undefined) continue
    const set = files.get(folder) ?? new Set<string>()
    for (const name of comboChoices(spec)) set.add(name)
    files.set(folder, set)
  }
  return new Map([...files].map(([folder, names]) => [folder, [...names].sort()]))
}

/** `/api/experiment/models` → local `/models`: the folder names. */
export function folderNames (folders: Array<{ name: string }>): string[] {
  return folders.map(folder => folder.name)
}

/** `/api/experiment/models/{folder}` → local `/models/{folder}`: the file names. */
export function fileNames (files: Array<{ name: string }>): string[] {
  return files.map(file => file.name)
}

/** Local `/embeddings` lists the embedding files without their extension (server.py `os.path.splitext`). */
export function embeddingNames (files: string[]): string[] {
  return files.map(name => name.replace(/(?<=[^/.])\.[^./]*$/, ''))
}
