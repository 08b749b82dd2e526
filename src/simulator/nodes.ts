/**
 * ComfyUI-style prompt validation (what `POST /api/prompt` answers with 400) over the instance's node catalogue.
 * Cloud runs ComfyUI's own validator, so the errors follow local's execution.py validate_prompt/validate_inputs
 * (cloud-api-notes §1.4, §2.1; contract §5.4; observed findings 7–10), including its quirks: widget values are
 * converted in place (int(), float(), str(), bool()), an exception while validating becomes
 * `exception_during_validation` on the output or `exception_during_inner_validation` on the linking node, and
 * every failed node lists every failed output as dependent.
 */
import { CUSTOM_VALIDATED, isOutputNode, type Catalog, type InputSpec } from './catalog.js'

export interface ApiNode {
  class_type?: unknown
  inputs?: Record<string, unknown>
  _meta?: { title?: unknown }
}
export type ApiPrompt = Record<string, ApiNode>

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

export interface ValidationContext {
  catalog: Catalog
  /** whether an uploaded file of this name exists for the account (LoadImage's VALIDATE_INPUTS) */
  fileExists: (name: string) => boolean
}

const isLink = (value: unknown): value is unknown[] => Array.isArray(value)

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Python's repr() of a JSON value, enough for error texts. */
export function pyRepr (value: unknown): string {
  if (typeof value === 'string') return `'${value}'`
  if (value === null || value === undefined) return 'None'
  if (typeof value === 'boolean') return value ? 'True' : 'False'
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`
  if (isPlainObject(value)) return `{${Object.entries(value).map(([k, v]) => `'${k}': ${pyRepr(v)}`).join(', ')}}`
  return String(value)
}

/** Python's str() of a JSON value. */
const pyStr = (value: unknown): string => typeof value === 'string' ? value : pyRepr(value)

const pyTypeName = (value: unknown): string =>
  value === null ? 'NoneType' : typeof value === 'string' ? 'str' : typeof value === 'boolean' ? 'bool' : typeof value === 'number' ? (Number.isInteger(value) ? 'int' : 'float') : Array.isArray(value) ? 'list' : 'dict'

/** A Python exception raised while validating (KeyError, IndexError, …). */
class PyError extends Error {
  constructor (readonly pyType: string, message: string) {
    super(message)
  }
}

const VALIDATION_TRACEBACK = ['  File "/comfyui/execution.py", line 1062, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n']

/**
 * Converts a widget value the way ComfyUI does: int(), float(), str(), bool(). Returns the value or the Python
 * error message.
 */
export function convert (type: string, value: unknown): { value: unknown } | { error: string } {
  if (type === 'INT') {
    if (typeof value === 'number' && Number.isFinite(value)) return { value: Math.trunc(value) }
    if (typeof value === 'boolean') return { value: value ? 1 : 0 }
    if (typeof value === 'string' && /^\s*[+-]?\d+(_\d+)*\s*$/.test(value)) return { value: Number(value.replaceAll('_', '')) }
    if (typeof value === 'string') return { error: `invalid literal for int() with base 10: ${pyRepr(value)}` }
    return { error: `int() argument must be a string, a bytes-like object or a real number, not '${pyTypeName(value)}'` }
  }
  if (type === 'FLOAT') {
    if (typeof value === 'number') return { value }
    if (typeof value === 'boolean') return { value: value ? 1 : 0 }
    if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return { value: Number(value) }
    if (typeof value === 'string') return { error: `could not convert string to float: ${pyRepr(value)}` }
    return { error: `float() argument must be a string or a real number, not '${pyTypeName(value)}'` }
  }
  if (type === 'STRING') return { value: pyStr(value) }
  if (type === 'BOOLEAN') {
    if (typeof value === 'string') return { value: value !== '' }
    if (isPlainObject(value)) return { value: Object.keys(value).length > 0 }
    return { value: value !== 0 && value !== false && value !== null }
  }
  return { value }
}

/** A number as Python prints it: FLOAT values keep a `.0`. */
const pyNumber = (value: number, type: string): string => type === 'FLOAT' && Number.isInteger(value) ? value.toFixed(1) : String(value)

/** validate_node_input: `*` matches anything; comma lists match when one side covers the other. */
function typesMatch (received: string, wanted: string | string[]): boolean {
  const input = Array.isArray(wanted) ? 'COMBO' : wanted
  if (received === '*' || input === '*' || received === input) return true
  const have = new Set(received.split(','))
  return input.split(',').every(type => have.has(type)) || [...have].every(type => input.split(',').includes(type))
}

interface Checked { valid: boolean, errors: PromptErrorDetail[] }

/**
 * Validates a whole API prompt like ComfyUI's validate_prompt: every node must have a known class_type,
 * at least one output node must be selected, and each output's dependency tree must be valid. Outputs that
 * fail are dropped; if none is left the prompt is refused with `prompt_outputs_failed_validation`. Widget values
 * are converted in place, as local stores the validated prompt.
 */
export function validatePrompt (prompt: ApiPrompt, context: ValidationContext, partialTargets?: string[]): ValidationResult {
  const { catalog } = context
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
    if (!catalog.has(entry.class_type)) {
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
    if (isOutputNode(entry.class_type) && (partialTargets === undefined || partialTargets.includes(id))) outputs.push(id)
  }
  if (outputs.length === 0) {
    return { ok: false, nodeErrors: {}, error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} } }
  }

  const validated = new Map<string, Checked>()
  const visiting: string[] = []

  /** One input's link: shape, target node and slot (these raise like Python does), type, then the target itself. */
  const checkLink = (x: string, spec: InputSpec, link: unknown[], errors: PromptErrorDetail[]): boolean => {
    const config = [spec[0], spec[1] ?? {}]
    if (link.length !== 2) {
      errors.push({
        type: 'bad_linked_input',
        message: 'Bad linked input, must be a length-2 list of [node_id, slot_index]',
        details: x,
        extra_info: { input_name: x, input_config: config, received_value: link }
      })
      return true
    }
    const [source, slot] = link
    if (typeof source !== 'string' || !Object.hasOwn(prompt, source)) throw new PyError('KeyError', pyRepr(source))
    const outputTypes = catalog.get(prompt[source].class_type as string)!.output
    if (typeof slot !== 'number' || !Number.isInteger(slot)) throw new PyError('TypeError', `tuple indices must be integers or slices, not ${pyTypeName(slot)}`)
    const received = outputTypes[slot < 0 ? outputTypes.length + slot : slot]
    if (received === undefined) throw new PyError('IndexError', 'tuple index out of range')
    if (!typesMatch(received, spec[0])) {
      errors.push({
        type: 'return_type_mismatch',
        message: 'Return type mismatch between linked nodes',
        details: `${x}, received_type(${received}) mismatch input_type(${Array.isArray(spec[0]) ? 'COMBO' : spec[0]})`,
        extra_info: { input_name: x, input_config: config, received_type: received, linked_node: link }
      })
      return true
    }
    try {
      return check(source).valid
    } catch (error) {
      if (!(error instanceof PyError)) throw error
      errors.push({
        type: 'exception_during_inner_validation',
        message: 'Exception when validating inner node',
        details: error.message,
        extra_info: { input_name: x, input_config: config, exception_message: error.message, exception_type: error.pyType, traceback: VALIDATION_TRACEBACK, linked_node: link }
      })
      return false
    }
  }

  /** One widget value: conversion (written back), range, choice list, or the node's own file check. */
  const checkValue = (classType: string, inputs: Record<string, unknown>, x: string, spec: InputSpec, errors: PromptErrorDetail[]): void => {
    const [type, options = {}] = spec
    const config = [type, options]
    let value = inputs[x]
    if (isPlainObject(value) && '__value__' in value) inputs[x] = value = value.__value__
    if (typeof type === 'string') {
      const converted = convert(type, value)
      if ('error' in converted) {
        errors.push({
          type: 'invalid_input_type',
          message: `Failed to convert an input ${x} value to a ${type} value`,
          details: `${x}, ${pyStr(value)}, ${converted.error}`,
          extra_info: { input_name: x, input_config: config, received_value: value, exception_message: converted.error }
        })
        return
      }
      inputs[x] = value = converted.value
    }
    if (CUSTOM_VALIDATED[classType] === x) {
      if (typeof value !== 'string' || !context.fileExists(value)) {
        errors.push({
          type: 'custom_validation_failed',
          message: 'Custom validation failed for node',
          details: `${x} - Invalid image file: ${pyStr(value)}`,
          extra_info: { input_name: x, input_config: config, received_value: value }
        })
      }
      return
    }
    if (typeof value === 'number' && typeof type === 'string') {
      if (typeof options.min === 'number' && value < options.min) {
        errors.push({
          type: 'value_smaller_than_min',
          message: `Value ${pyNumber(value, type)} smaller than min of ${pyNumber(options.min, type)}`,
          details: x,
          extra_info: { input_name: x, input_config: config, received_value: value }
        })
      }
      if (typeof options.max === 'number' && value > options.max) {
        errors.push({
          type: 'value_bigger_than_max',
          message: `Value ${pyNumber(value, type)} bigger than max of ${pyNumber(options.max, type)}`,
          details: x,
          extra_info: { input_name: x, input_config: config, received_value: value }
        })
      }
    }
    if (Array.isArray(type) && !type.includes(value as string)) {
      // ComfyUI does not echo long choice lists (model folders can hold hundreds of files).
      const long = type.length > 20
      errors.push({
        type: 'value_not_in_list',
        message: 'Value not in list',
        details: `${x}: '${pyStr(value)}' not in ${long ? `(list of length ${type.length})` : pyRepr(type)}`,
        extra_info: { input_name: x, input_config: long ? null : config, received_value: value }
      })
    }
  }

  const check = (id: string): Checked => {
    const done = validated.get(id)
    if (done !== undefined) return done
    if (visiting.includes(id)) {
      // Local recurses until Python's RecursionError; naming the cycle is more useful.
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
      validated.set(id, result)
      return result
    }
    visiting.push(id)
    const entry = prompt[id]
    const classType = entry.class_type as string
    const info = catalog.get(classType)!
    if (!isPlainObject(entry.inputs)) entry.inputs = {}
    const inputs = entry.inputs
    const errors: PromptErrorDetail[] = []
    let valid = true
    for (const [category, specs] of [['required', info.input.required], ['optional', info.input.optional ?? {}]] as const) {
      for (const [x, spec] of Object.entries(specs)) {
        if (!(x in inputs)) {
          if (category === 'required') errors.push({ type: 'required_input_missing', message: 'Required input is missing', details: x, extra_info: { input_name: x } })
          continue
        }
        const value = inputs[x]
        if (isLink(value)) {
          if (!checkLink(x, spec, value, errors)) valid = false
        } else {
          checkValue(classType, inputs, x, spec, errors)
        }
      }
    }
    visiting.splice(visiting.indexOf(id), 1)
    const result = validated.get(id) ?? { valid: true, errors: [] }
    result.valid = result.valid && valid && errors.length === 0
    result.errors = [...result.errors, ...errors]
    validated.set(id, result)
    return result
  }

  const good: string[] = []
  const nodeErrors: Record<string, NodeError> = {}
  const failed: PromptErrorDetail[] = []
  for (const output of outputs) {
    let result: Checked
    try {
      result = check(output)
    } catch (error) {
      if (!(error instanceof PyError)) throw error
      visiting.length = 0
      result = {
        valid: false,
        errors: [{
          type: 'exception_during_validation',
          message: 'Exception when validating node',
          details: error.message,
          extra_info: { exception_type: error.pyType, traceback: VALIDATION_TRACEBACK }
        }]
      }
      validated.set(output, result)
    }
    if (result.valid) {
      good.push(output)
      continue
    }
    failed.push(...result.errors)
    // Like local, every node that failed so far lists this output, related or not (observed finding 9).
    for (const [id, checked] of validated) {
      if (checked.valid || checked.errors.length === 0) continue
      nodeErrors[id] ??= { errors: checked.errors, dependent_outputs: [], class_type: prompt[id].class_type as string }
      nodeErrors[id].dependent_outputs.push(output)
    }
  }
  if (good.length === 0) {
    return {
      ok: false,
      nodeErrors,
      error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: failed.map(e => `${e.message}: ${e.details}`).join('\n'), extra_info: {} }
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
  return Object.keys(prompt).filter(id => isOutputNode(prompt[id]?.class_type))
}
