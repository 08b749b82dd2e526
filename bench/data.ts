/**
 * Realistic seed data for the benchmarks: text-to-image API graphs with a LoRA chain, the UI workflow
 * a ComfyUI front end stores in `extra_data.extra_pnginfo.workflow` (LiteGraph format), and finished
 * jobs shaped like the simulator's own finished job (outputs, status messages, meta), so every seeded
 * job passes the proxy's cloud schemas exactly as a real one does.
 */
import { randomUUID } from 'node:crypto'
import type { JobDetail, JobStatus } from '../src/simulator/app.js'

type Graph = Record<string, { class_type: string, inputs: Record<string, unknown>, _meta?: { title: string } }>

const PROMPTS = [
  'a lighthouse on a rocky coast at dusk, volumetric light, dramatic clouds, highly detailed, 35mm photograph, golden hour, sharp focus',
  'an isometric cutaway of a cozy bookshop with a cat sleeping on the counter, warm lamps, soft shadows, intricate details, octane render',
  'portrait of an elderly fisherman with a weathered face, rain jacket, harbour in the background, overcast light, film grain, 85mm lens',
  'a futuristic tram crossing a bridge over a misty river at sunrise, cyberpunk city skyline, neon reflections, cinematic composition'
]
const NEGATIVE = 'blurry, lowres, jpeg artifacts, watermark, text, signature, deformed hands, extra fingers, bad anatomy, oversaturated'
const LORAS = ['add_detail.safetensors', 'film_grain_v2.safetensors', 'cinematic_lighting.safetensors', 'sharp_focus_xl.safetensors', 'hdr_style.safetensors']

/** The SDXL-style text-to-image API graph with `loras` LoRA loaders between the checkpoint and the sampler. */
export function apiGraph (seed: number, loras: number, width = 1024, height = 1024, steps = 25): Graph {
  const graph: Graph = {
    4: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd_xl_base_1.0.safetensors' }, _meta: { title: 'Load Checkpoint' } }
  }
  let model: [string, number] = ['4', 0]
  let clip: [string, number] = ['4', 1]
  for (let i = 0; i < loras; i++) {
    const id = String(10 + i)
    graph[id] = {
      class_type: 'LoraLoader',
      inputs: { lora_name: LORAS[i % LORAS.length], strength_model: 0.6 + (i % 3) * 0.1, strength_clip: 0.8, model, clip },
      _meta: { title: `Load LoRA ${i + 1}` }
    }
    model = [id, 0]
    clip = [id, 1]
  }
  graph[5] = { class_type: 'EmptyLatentImage', inputs: { width, height, batch_size: 1 }, _meta: { title: 'Empty Latent Image' } }
  graph[6] = { class_type: 'CLIPTextEncode', inputs: { text: PROMPTS[seed % PROMPTS.length], clip }, _meta: { title: 'CLIP Text Encode (Prompt)' } }
  graph[7] = { class_type: 'CLIPTextEncode', inputs: { text: NEGATIVE, clip }, _meta: { title: 'CLIP Text Encode (Negative)' } }
  graph[3] = {
    class_type: 'KSampler',
    inputs: { seed: 100_000 + seed, steps, cfg: 7, sampler_name: 'dpmpp_2m', scheduler: 'karras', denoise: 1, model, positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] },
    _meta: { title: 'KSampler' }
  }
  graph[8] = { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] }, _meta: { title: 'VAE Decode' } }
  graph[9] = { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] }, _meta: { title: 'Save Image' } }
  return graph
}

const OUTPUT_TYPES: Record<string, string[]> = {
  CheckpointLoaderSimple: ['MODEL', 'CLIP', 'VAE'],
  LoraLoader: ['MODEL', 'CLIP'],
  EmptyLatentImage: ['LATENT'],
  CLIPTextEncode: ['CONDITIONING'],
  KSampler: ['LATENT'],
  VAEDecode: ['IMAGE'],
  SaveImage: []
}

const isLink = (value: unknown): value is [string, number] => Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'number'

/** The LiteGraph UI workflow a front end would save for this graph (nodes, links, widget values). */
export function uiWorkflow (graph: Graph): Record<string, unknown> {
  const ids = Object.keys(graph)
  const links: Array<[number, number, number, number, number, string]> = []
  const outputLinks = new Map<string, number[][]>()
  const nodes = ids.map((id, order) => {
    const node = graph[id]
    const inputs: Array<Record<string, unknown>> = []
    const widgets: unknown[] = []
    let slot = 0
    for (const [name, value] of Object.entries(node.inputs)) {
      if (isLink(value)) {
        const linkId = links.length + 1
        const type = OUTPUT_TYPES[graph[value[0]].class_type]?.[value[1]] ?? '*'
        links.push([linkId, Number(value[0]), value[1], Number(id), slot++, type])
        inputs.push({ name, type, link: linkId })
        const perSlot = outputLinks.get(value[0]) ?? []
        ;(perSlot[value[1]] ??= []).push(linkId)
        outputLinks.set(value[0], perSlot)
      } else {
        widgets.push(value)
        if (name === 'seed') widgets.push('randomize')
      }
    }
    return {
      id: Number(id),
      type: node.class_type,
      pos: [100 + (order % 4) * 420, 120 + Math.floor(order / 4) * 260],
      size: [380, 110 + 24 * widgets.length],
      flags: {},
      order,
      mode: 0,
      inputs,
      outputs: [] as unknown[],
      properties: { 'Node name for S&R': node.class_type, cnr_id: 'comfy-core', ver: '0.3.75' },
      widgets_values: widgets,
      title: node._meta?.title
    }
  })
  for (const node of nodes) {
    const perSlot = outputLinks.get(String(node.id)) ?? []
    node.outputs = (OUTPUT_TYPES[node.type] ?? []).map((type, slot) => ({ name: type, type, links: perSlot[slot] ?? [], slot_index: slot }))
  }
  return {
    id: randomUUID(),
    revision: 0,
    last_node_id: Math.max(...ids.map(Number)),
    last_link_id: links.length,
    nodes,
    links,
    groups: [{ id: 1, title: 'Prompt', bounding: [80, 80, 900, 600], color: '#3f789e', font_size: 24, flags: {} }],
    config: {},
    extra: { ds: { scale: 0.9, offset: [12.5, -40] }, frontendVersion: '1.30.6', VHS_latentpreview: false },
    version: 0.4
  }
}

export interface WorkflowContainer { prompt: Graph, extra_data: Record<string, unknown> }

/** What a front end submits: the API graph plus extra_data carrying its UI workflow. */
export function workflowContainer (seed: number, loras: number, clientId: string, withUi = true, width = 1024, height = 1024): WorkflowContainer {
  const prompt = apiGraph(seed, loras, width, height)
  const extraData: Record<string, unknown> = { client_id: clientId }
  if (withUi) extraData.extra_pnginfo = { workflow: uiWorkflow(prompt) }
  return { prompt, extra_data: extraData }
}

const loraCountCache = new Map<number, number>()

/** How many LoRA loaders make the workflow container about `targetBytes` of JSON. */
export function lorasForSize (targetBytes: number): number {
  const known = loraCountCache.get(targetBytes)
  if (known !== undefined) return known
  let loras = 0
  while (loras < 200 && JSON.stringify(workflowContainer(1, loras, randomUUID())).length < targetBytes) loras++
  loraCountCache.set(targetBytes, loras)
  return loras
}

export interface SeedSpec {
  /** how many jobs */
  count: number
  /** create_time of the first (oldest) one; the others follow every spacingMs */
  startTime: number
  spacingMs: number
  /** approximate JSON size of each job's workflow container; 0: API graph only, no UI workflow */
  workflowBytes: number
}

/** Finished jobs modelled on a real finished job of the simulator (its outputs, status and meta). */
export function finishedJobs (template: JobDetail, spec: SeedSpec): Array<Partial<JobDetail> & { status: JobStatus }> {
  const loras = spec.workflowBytes > 0 ? lorasForSize(spec.workflowBytes) : 1
  const clientId = randomUUID()
  const jobs: Array<Partial<JobDetail> & { status: JobStatus }> = []
  for (let i = 0; i < spec.count; i++) {
    const id = randomUUID()
    const created = spec.startTime + i * spec.spacingMs
    const started = created + 150
    const ended = started + 3_800 + (i % 7) * 230
    const shift = (time: unknown): unknown => typeof time === 'number' ? time - (template.execution_start_time ?? time) + started : time
    const status = template.execution_status === undefined
      ? undefined
      : {
          ...template.execution_status,
          messages: template.execution_status.messages.map(([event, data]): [string, Record<string, unknown>] =>
            [event, { ...data, prompt_id: id, ...(data.timestamp === undefined ? {} : { timestamp: shift(data.timestamp) }) }])
        }
    jobs.push({
      id,
      status: 'completed',
      create_time: created,
      update_time: ended,
      execution_start_time: started,
      execution_end_time: ended,
      outputs_count: template.outputs_count,
      preview_output: template.preview_output,
      outputs: template.outputs,
      execution_status: status,
      execution_meta: template.execution_meta,
      workflow: workflowContainer(i, loras, clientId, spec.workflowBytes > 0) as JobDetail['workflow'],
      workflow_id: randomUUID()
    })
  }
  return jobs
}
