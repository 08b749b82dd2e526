/**
 * What models the cloud has, for local's `/models` routes: its model listing
 * (`/api/experiment/models…`, spec) when it answers one, else the loaders' choices in
 * `/object_info` (the deployed cloud 404s `/api/models`, notes §1.1). Answers are cached
 * briefly: a model list changes rarely and every lookup is a metered cloud call.
 */
import type { CloudClient } from './cloud/client.js'
import { cloudPathSegment } from './cloud/client.js'
import type { Json } from './cloud/types.js'
import type { ProxyCache } from './cache.js'
import { fileNames, folderNames, LOCAL_MODEL_FOLDERS, modelsFromObjectInfo } from './compat/models.js'

const MODELS_TTL_MS = 60_000

export class ModelCatalog {
  constructor (
    private readonly cloud: CloudClient,
    private readonly cache: ProxyCache,
    private readonly objectInfo: () => Promise<Json>
  ) {}

  /** Local's standard folders (a client may ask for any of them), then any other the cloud lists. */
  async folders (): Promise<string[]> {
    const listed = await this.cloudFolders() ?? []
    return [...new Set([...LOCAL_MODEL_FOLDERS, ...listed])]
  }

  /** The file names of one folder, or undefined for a folder that does not exist (local answers 404). */
  async files (folder: string): Promise<string[] | undefined> {
    const cloudFolders = await this.cloudFolders()
    // Only folders the cloud lists are asked for one by one: an unknown name costs no cloud call.
    if (cloudFolders?.includes(folder) === true) {
      return await this.cache.shared(`models/${folder}`, async () => {
        const response = await this.cloud.call<Array<{ name: string }>>({
          method: 'GET', path: `/api/experiment/models/${cloudPathSegment(folder)}`, route: '/api/experiment/models/:folder', schema: 'ModelFileList', accept: [404]
        })
        // The spec's 404 is "folder not found or no models in folder": a folder the cloud lists is empty.
        return response.status === 404 ? [] : fileNames(response.body)
      }, MODELS_TTL_MS)
    }
    const fromLoaders = modelsFromObjectInfo(await this.objectInfo()).get(folder)
    if (fromLoaders !== undefined) return fromLoaders
    // A standard folder the cloud has nothing in is empty, as on a local install without such models.
    return LOCAL_MODEL_FOLDERS.includes(folder) ? [] : undefined
  }

  /** The cloud's folder names, or null when it has no model listing. */
  private async cloudFolders (): Promise<string[] | null> {
    return await this.cache.shared('models', async () => {
      const response = await this.cloud.call<Array<{ name: string }>>({
        method: 'GET', path: '/api/experiment/models', schema: 'ModelFolderList', accept: [404]
      })
      return response.status === 404 ? null : folderNames(response.body)
    }, MODELS_TTL_MS)
  }
}
