/**
 * The cloud's model listing (`/api/experiment/models`, `/api/experiment/models/{folder}` in the
 * published spec): the simulator's model folders and files, as its loaders offer them. Public, as the spec says.
 */
import type { FastifyInstance } from 'fastify'
import { notFound } from './errors.js'
import type { ModelFolders } from './models.js'

export const MODEL_LISTING_ROUTES = ['/api/experiment/models', '/api/experiment/models/:folder']

export function registerModelListing (app: FastifyInstance, models: ModelFolders): void {
  app.get(MODEL_LISTING_ROUTES[0], async () => Object.keys(models).map(name => ({ name, folders: [name] })))

  app.get<{ Params: { folder: string } }>(MODEL_LISTING_ROUTES[1], async request => {
    const { folder } = request.params
    const files = Object.hasOwn(models, folder) ? models[folder as keyof ModelFolders] : []
    // The spec: 404 for a folder that does not exist or has no models.
    if (files.length === 0) throw notFound(`Folder not found or no models in folder: ${folder}`)
    return files.map(name => ({ name, pathIndex: 0 }))
  })
}
