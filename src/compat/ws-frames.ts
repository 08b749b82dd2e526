/**
 * Prompt ids inside WebSocket frames, renamed to the ids clients know (observed finding 4). Text
 * frames name the prompt in `data.prompt_id` and, for progress_state, in every node; binary type-4
 * previews carry it in their JSON metadata (observed finding 29). No I/O here.
 */

/** Every JSON string equal to the cloud id becomes the client's id; a UUID never occurs by chance. */
export function renamePromptInText (text: string, cloudId: string, clientId: string): string {
  return text.split(JSON.stringify(cloudId)).join(JSON.stringify(clientId))
}

const PREVIEW_WITH_METADATA = 4

/** A binary frame with its metadata's prompt_id renamed; the frame itself when there is nothing to rename. */
export function renamePromptInBinary (frame: Buffer, rename: (cloudId: string) => string): Buffer {
  if (frame.length < 8 || frame.readUInt32BE(0) !== PREVIEW_WITH_METADATA) return frame
  const length = frame.readUInt32BE(4)
  if (8 + length > frame.length) return frame
  let metadata: { prompt_id?: unknown }
  try {
    metadata = JSON.parse(frame.toString('utf8', 8, 8 + length))
  } catch {
    return frame
  }
  if (typeof metadata?.prompt_id !== 'string') return frame
  const clientId = rename(metadata.prompt_id)
  if (clientId === metadata.prompt_id) return frame
  const json = Buffer.from(JSON.stringify({ ...metadata, prompt_id: clientId }))
  const head = Buffer.alloc(8)
  head.writeUInt32BE(PREVIEW_WITH_METADATA, 0)
  head.writeUInt32BE(json.length, 4)
  return Buffer.concat([head, json, frame.subarray(8 + length)])
}
