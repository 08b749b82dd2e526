/**
 * The integration suite again, against the simulator playing the deployed cloud (SIMULATOR_PROFILE=current,
 * issue 10 rule 7): history, prompt, queue and interrupt, view, ws and pass-through, and the real npm
 * clients. One process for all of them: the files are the same, only the cloud differs, so sharing one
 * process saves a TypeScript start-up per file.
 */
process.env.SIMULATOR_PROFILE = 'current'
await import('../proxy/history.test.js')
await import('../proxy/prompt.test.js')
await import('../proxy/operations.test.js')
await import('../proxy/routes.test.js')
await import('../clients/comfy-ui-client.test.js')
await import('../clients/saintno-comfyui-sdk.test.js')
await import('../clients/stable-canvas-comfyui-client.test.js')
await import('../clients/comfyui-mcp.test.js')

const { default: t } = await import('tap')
const { startStack, getJson } = await import('../helpers.js')
t.test('the suite above ran against the current cloud', async t => {
  const stack = await startStack(t)
  const foreign = stack.simulator.app.simulator.seedJob(stack.otherKey, { status: 'completed' })
  const direct = await getJson(`${stack.simulator.url}/api/jobs/${foreign.id}`, { headers: { 'x-api-key': stack.key } })
  t.equal(direct.status, 403, 'another account\'s job is a plain 403 only in the current profile')
})
