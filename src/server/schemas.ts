/**
 * Request-body schemas for the inference endpoints. They check what Sluice relies on and the
 * types OpenAI would reject anyway, and let every other field through untouched (providers add
 * fields faster than a gateway can list them).
 */
const nullableInteger = { type: ['integer', 'null'], minimum: 1 } as const;
const common = {
  model: { type: 'string', minLength: 1, maxLength: 256 },
  stream: { type: ['boolean', 'null'] },
  stream_options: {
    type: ['object', 'null'],
    properties: { include_usage: { type: 'boolean' } },
  },
  max_tokens: nullableInteger,
  n: { type: ['integer', 'null'], minimum: 1, maximum: 128 },
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
  user: { type: 'string', maxLength: 256 },
} as const;

export const chatCompletionsBody = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...common,
    max_completion_tokens: nullableInteger,
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 100_000,
      items: {
        type: 'object',
        required: ['role'],
        properties: { role: { type: 'string', minLength: 1, maxLength: 64 } },
      },
    },
  },
} as const;

const textOrTokens = {
  anyOf: [
    { type: 'string' },
    { type: 'array', minItems: 1, maxItems: 100_000, items: { type: ['string', 'integer', 'array'] } },
  ],
} as const;

export const completionsBody = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: { ...common, prompt: textOrTokens },
} as const;

export const embeddingsBody = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: common.model,
    input: textOrTokens,
    encoding_format: { type: 'string', enum: ['float', 'base64'] },
    dimensions: { type: 'integer', minimum: 1 },
    user: common.user,
  },
} as const;
