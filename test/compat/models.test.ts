import t from 'tap'
import { embeddingNames, LOCAL_MODEL_FOLDERS, modelsFromObjectInfo } from '../../src/compat/models.js'

t.test('the folders local ComfyUI 0.18 lists at /models', async t => {
  t.equal(LOCAL_MODEL_FOLDERS[0], 'checkpoints')
  for (const folder of ['loras', 'vae', 'text_encoders', 'diffusion_models', 'embeddings', 'controlnet', 'upscale_models']) {
    t.ok(LOCAL_MODEL_FOLDERS.includes(folder), folder)
  }
  t.equal(new Set(LOCAL_MODEL_FOLDERS).size, LOCAL_MODEL_FOLDERS.length, 'no folder twice')
})

t.test('model files from the loaders in /object_info: both combo forms, merged per folder and sorted', async t => {
  const objectInfo = {
    CheckpointLoaderSimple: { input: { required: { ckpt_name: [['b.safetensors', 'a.ckpt'], { tooltip: 'x' }] } } },
    ImageOnlyCheckpointLoader: { input: { required: { ckpt_name: [['c.safetensors', 'a.ckpt']] } } },
    LoraLoader: { input: { required: { lora_name: ['COMBO', { options: ['style.safetensors'] }], strength_model: ['FLOAT', {}] } } },
    DualCLIPLoader: { input: { required: { clip_name1: [['t5.safetensors']], clip_name2: [['clip_l.safetensors']] } } },
    UNETLoader: { input: { optional: { unet_name: [['flux.safetensors']] } } },
    VAELoader: { input: { required: { vae_name: 'not a spec' } } },
    KSampler: { input: { required: { sampler_name: [['euler']] } } }
  }
  const models = modelsFromObjectInfo(objectInfo)
  t.same(Object.fromEntries(models), {
    checkpoints: ['a.ckpt', 'b.safetensors', 'c.safetensors'],
    loras: ['style.safetensors'],
    text_encoders: ['clip_l.safetensors', 't5.safetensors'],
    diffusion_models: ['flux.safetensors'],
    vae: []
  })
  t.same(Object.fromEntries(modelsFromObjectInfo({})), {}, 'no loaders, no folders')
})

t.test('/embeddings names drop the extension like os.path.splitext', async t => {
  t.same(embeddingNames(['easynegative.safetensors', 'sub/bad.hands.pt', '.hidden', 'noext']), ['easynegative', 'sub/bad.hands', '.hidden', 'noext'])
})
