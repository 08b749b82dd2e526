/** Entry point: configuration → (built-in simulator) → app → listen → graceful shutdown. */
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { ConfigError, loadConfig, type LoadedConfig } from './config.js'
import { buildApp } from './app.js'
import { parseModelList, startSimulator } from './simulator/app.js'

export async function serve (env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  let config: LoadedConfig
  try {
    config = loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      process.exit(1)
    }
    throw err
  }

  let simulator: Awaited<ReturnType<typeof startSimulator>> | undefined
  if (config.useSimulator) {
    const apiKey = `comfyui-simulator-${randomBytes(16).toString('hex')}`
    simulator = await startSimulator({
      apiKeys: [apiKey],
      concurrency: config.simulatorConcurrency,
      stepMs: config.simulatorStepMs,
      profile: config.simulatorProfile,
      models: parseModelList(config.simulatorModels),
      maxJobs: config.simulatorMaxJobs,
      rateLimit: config.simulatorRateLimit,
      queueLimit: config.simulatorQueueLimit > 0 ? config.simulatorQueueLimit : undefined,
      host: '127.0.0.1',
      port: 0
    })
    config = { ...config, cloudUrl: simulator.url, apiKey }
  }

  const app = buildApp(config, { startupCheck: !config.useSimulator })
  if (simulator !== undefined) {
    const stop = simulator.close
    app.addHook('onClose', async () => { await stop() })
    app.log.info({ simulator: simulator.url },
      'No COMFY_CLOUD_API_KEY or COMFY_CLOUD_URL set: serving from the built-in Comfy Cloud simulator. Set COMFY_CLOUD_API_KEY (or COMFY_CLOUD_API_KEY_FILE) to use Comfy Cloud.')
  }
  await app.listen({ port: config.port, host: config.host })

  closeWithGrace({ delay: config.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await serve()
}
