#!/usr/bin/env python3
"""Load for an OpenAI-compatible server (tessera serve, or any other): N clients, each
sending R streamed chat requests one after another; prints the aggregate generation
throughput (completion tokens of all requests / wall time), the median and 90th
percentile time to first token, the median generation speed one client sees (tokens
after the first / time from the first to the last) and the median prompt length the
server reports (its chat template and tokenizer decide it), as one JSON line.

usage: load.py --url http://127.0.0.1:8080 [--clients 4] [--requests 4] [--max-tokens 64]
"""
import argparse
import http.client
import json
import math
import statistics
import threading
import time
import urllib.parse

TOPICS = ["the sea", "a mountain", "winter", "a city at night", "an old library", "the first snow",
          "a train journey", "a garden", "the moon", "a storm", "a lighthouse", "a market"]


def one_request(url, body, key):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers=headers)
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    ttft, chunks, usage, t_last = None, 0, None, None
    while True:
        line = r.fp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev.get("choices", []):
            if ch.get("delta", {}).get("content"):
                chunks += 1
                t_last = time.perf_counter() - t0
                if ttft is None:
                    ttft = t_last
    c.close()
    n = usage["completion_tokens"] if usage else chunks
    n_prompt = usage.get("prompt_tokens") if usage else None
    rate = (n - 1) / (t_last - ttft) if ttft is not None and t_last > ttft and n > 1 else None
    return ttft if ttft is not None else time.perf_counter() - t0, n, rate, n_prompt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--api-key", default="")
    a = ap.parse_args()
    ttfts, tokens, rates, errors, prompts = [], [], [], [], []
    lock = threading.Lock()

    def client(ci):
        for ri in range(a.requests):
            topic = TOPICS[(ci * a.requests + ri) % len(TOPICS)]
            body = {"messages": [{"role": "user", "content": f"Write a short poem about {topic}."}],
                    "max_tokens": a.max_tokens, "temperature": 0, "stream": True,
                    "stream_options": {"include_usage": True}}
            try:
                t, n, rate, n_prompt = one_request(a.url, body, a.api_key)
                with lock:
                    ttfts.append(t)
                    if n_prompt is not None:
                        prompts.append(n_prompt)
                    tokens.append(n)
                    if rate is not None:
                        rates.append(rate)
            except Exception as e:  # noqa: BLE001 - reported in the result
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts.sort()
    print(json.dumps({
        "clients": a.clients, "requests": len(tokens), "errors": len(errors),
        "completion_tokens": sum(tokens), "wall_s": round(wall, 2),
        "throughput_tok_s": round(sum(tokens) / wall, 2),
        "ttft_median_ms": round(statistics.median(ttfts) * 1000, 1) if ttfts else None,
        "ttft_p90_ms": round(ttfts[math.ceil(0.9 * len(ttfts)) - 1] * 1000, 1) if ttfts else None,
        "client_gen_tok_s_median": round(statistics.median(rates), 2) if rates else None,
        "prompt_tokens_median": statistics.median(prompts) if prompts else None,
    }))


if __name__ == "__main__":
    main()
