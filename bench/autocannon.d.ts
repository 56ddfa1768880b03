// The part of autocannon's API the benchmark uses (the package ships no types).
declare module 'autocannon' {
  namespace autocannon {
    interface Options {
      url: string;
      method?: string;
      headers?: Record<string, string>;
      body?: string;
      connections?: number;
      duration?: number;
      requests?: Array<{
        method?: string;
        path?: string;
        headers?: Record<string, string>;
        body?: string;
        setupRequest?: (
          request: { body?: string; [key: string]: unknown },
          context: Record<string, unknown>,
        ) => unknown;
        /** Called with the context its setupRequest saw (autocannon resets it for the next request). */
        onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
      }>;
    }
    interface Result {
      /** total: requests answered; sent: requests sent. */
      requests: { average: number; total: number; sent: number };
      /** Seconds the run took. */
      duration: number;
      latency: { p50: number; p99: number; max: number };
      non2xx: number;
      /** Answers by status code. */
      statusCodeStats: Record<string, { count: number }>;
      errors: number;
      timeouts: number;
    }
  }
  function autocannon(options: autocannon.Options): Promise<autocannon.Result>;
  export default autocannon;
}
