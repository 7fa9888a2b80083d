/**
 * Token usage read from a provider's answer without parsing the whole body: the `usage` object is
 * small and sits at the end, so a search from the last `"usage"` keeps JSON work off the hot path
 * even for large completions.
 */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

const PROMPT = /"prompt_tokens"\s*:\s*(\d+)/;
const COMPLETION = /"completion_tokens"\s*:\s*(\d+)/;
const TOTAL = /"total_tokens"\s*:\s*(\d+)/;

export function extractUsage(body: Buffer | string): Usage | undefined {
  const at = body.lastIndexOf('"usage"');
  if (at < 0) return undefined;
  const window = typeof body === 'string' ? body.slice(at, at + 1024) : body.toString('utf8', at, at + 1024);
  const prompt = PROMPT.exec(window);
  const total = TOTAL.exec(window);
  if (!prompt && !total) return undefined;
  const promptTokens = prompt ? Number(prompt[1]) : 0;
  const completion = COMPLETION.exec(window);
  const completionTokens = completion ? Number(completion[1]) : 0;
  return {
    promptTokens,
    completionTokens,
    totalTokens: total ? Number(total[1]) : promptTokens + completionTokens,
  };
}
