#!/usr/bin/env python3
"""tessera serve over HTTP: a server started on a free loopback port with a real model,
driven through the official OpenAI Python client (when scripts/setup.sh installed it in
its virtual environment; those cases skip otherwise) and with raw HTTP for the error cases.

usage: server_test.py TESSERA_BINARY MODEL.gguf   (exit 77: skipped, with the reason)
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

BIN, MODEL = sys.argv[1], sys.argv[2]
KEY = "test-key-1234"
PARALLEL = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *extra, preexec_fn=None):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--port", str(self.port), "-np", str(PARALLEL), "-c", "4096", "-t", "2",
             "--api-key", KEY, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec_fn)
        deadline = time.time() + 60
        while time.time() < deadline:  # 503 while the model loads, refused before the port is bound
            try:
                if self.request("GET", "/health", auth=False)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("the server did not start: " + self.proc.stderr.read().decode(errors="replace"))

    def connect(self, timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, auth=True, raw=None, headers=None):
        c = self.connect()
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = "Bearer " + KEY
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def stream(self, path, body, limit=None):
        """The data events of a streamed response (all, or the first `limit` then the
        connection is dropped)."""
        c = self.connect()
        c.request("POST", path, body=json.dumps(dict(body, stream=True)),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
        r = c.getresponse()
        assert r.status == 200, r.status
        events, buf = [], b""
        while True:
            line = r.fp.readline()
            if not line:
                break
            line = line.strip()
            if line.startswith(b"data: "):
                events.append(line[6:].decode())
                if limit is not None and len(events) >= limit:
                    c.sock.close()
                    return events
                if events[-1] == "[DONE]":
                    break
        c.close()
        return events

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chat(messages, **kw):
    return dict({"messages": messages}, **kw)


HELLO = [{"role": "user", "content": "Name three colors."}]


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_health_and_models(self):
        status, health = self.srv.request("GET", "/health", auth=False)
        self.assertEqual((status, health["status"]), (200, "ok"))
        self.assertEqual(health["slots_idle"] + health["slots_processing"], PARALLEL)
        self.assertEqual(health["requests_queued"], 0)
        status, body = self.srv.request("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(body["object"], "list")
        self.assertEqual(len(body["data"]), 1)

    def test_chat_greedy_is_repeatable_and_counts_are_true(self):
        s1, a = self.srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=16, temperature=0))
        s2, b = self.srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=16, temperature=0))
        self.assertEqual((s1, s2), (200, 200))
        self.assertEqual(a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"])
        self.assertEqual(a["choices"][0]["message"]["role"], "assistant")
        self.assertIn(a["choices"][0]["finish_reason"], ("stop", "length"))
        u = a["usage"]
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        self.assertLessEqual(u["completion_tokens"], 16)
        t = b["timings"]  # the second request reused the first one's prompt
        self.assertEqual(t["predicted_n"], b["usage"]["completion_tokens"])
        self.assertEqual(t["cache_n"], b["usage"]["prompt_tokens_details"]["cached_tokens"])
        self.assertEqual(t["prompt_n"] + t["cache_n"], b["usage"]["prompt_tokens"])
        self.assertGreater(t["cache_n"], 0)
        self.assertGreater(t["prompt_per_second"], 0)
        self.assertGreater(t["predicted_per_second"], 0)
        # The completion's tokens, counted by the tokenizer, agree with the usage (a reply that
        # ended with end-of-turn counts the tokens before it).
        text = a["choices"][0]["message"]["content"]
        status, toks = self.srv.request("POST", "/tokenize", {"content": text})
        self.assertEqual(status, 200)
        self.assertLessEqual(abs(len(toks["tokens"]) - u["completion_tokens"]), 1)

    def test_max_tokens_ends_with_length(self):
        status, r = self.srv.request("POST", "/v1/completions",
                                     {"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0})
        self.assertEqual(status, 200)
        self.assertEqual(r["usage"]["completion_tokens"], 5)
        self.assertEqual(r["choices"][0]["finish_reason"], "length")
        status, toks = self.srv.request("POST", "/tokenize", {"content": "Once upon a time", "add_special": True})
        self.assertEqual(r["usage"]["prompt_tokens"], len(toks["tokens"]))

    def test_stream_equals_whole_response(self):
        body = chat(HELLO, max_tokens=20, temperature=0, stream_options={"include_usage": True})
        status, whole = self.srv.request("POST", "/v1/chat/completions", body)
        events = self.srv.stream("/v1/chat/completions", body)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        self.assertEqual(text, whole["choices"][0]["message"]["content"])
        finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        self.assertEqual(len(finals), 1)
        self.assertEqual(finals[0]["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"])
        self.assertEqual(chunks[-1]["usage"], whole["usage"])
        self.assertEqual(finals[0]["timings"]["predicted_n"], whole["usage"]["completion_tokens"])

    def test_stop_string(self):
        status, free = self.srv.request("POST", "/v1/completions",
                                        {"prompt": "1, 2, 3, 4,", "max_tokens": 12, "temperature": 0})
        text = free["choices"][0]["text"]
        self.assertGreater(len(text.strip()), 2)
        stop = text.strip()[1:3] if len(text.strip()) > 3 else text.strip()[:1]
        status, r = self.srv.request("POST", "/v1/completions",
                                     {"prompt": "1, 2, 3, 4,", "max_tokens": 12, "temperature": 0, "stop": [stop]})
        self.assertEqual(status, 200)
        self.assertEqual(r["choices"][0]["finish_reason"], "stop")
        self.assertEqual(r["choices"][0]["text"], text[:text.find(stop)])

    def test_seed_gives_the_same_text(self):
        body = chat(HELLO, max_tokens=16, temperature=1.0, seed=1234)
        a = self.srv.request("POST", "/v1/chat/completions", body)[1]["choices"][0]["message"]["content"]
        b = self.srv.request("POST", "/v1/chat/completions", body)[1]["choices"][0]["message"]["content"]
        self.assertEqual(a, b)

    def test_concurrent_clients_get_what_they_get_alone(self):
        prompts = [[{"role": "user", "content": f"Write a sentence about the number {i}."}] for i in range(8)]
        alone = []
        for p in prompts:
            r = self.srv.request("POST", "/v1/chat/completions", chat(p, max_tokens=48, temperature=0))[1]
            alone.append(r["choices"][0]["message"]["content"])
        together = [None] * 8

        def run(i):
            events = self.srv.stream("/v1/chat/completions", chat(prompts[i], max_tokens=48, temperature=0))
            together[i] = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                                  for e in events[:-1] if json.loads(e)["choices"])
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Exactly the same text: a sequence's logits do not depend on what else its batches
        # hold (the prompts differ in their number, so the replies differ too: no cross-talk).
        for a, b in zip(together, alone):
            self.assertEqual(a, b)

    def test_ignore_eos_runs_to_max_tokens(self):
        status, short = self.srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=200, temperature=0))
        self.assertEqual((status, short["choices"][0]["finish_reason"]), (200, "stop"))
        n = short["usage"]["completion_tokens"] + 8  # past the end of turn
        status, r = self.srv.request("POST", "/v1/chat/completions",
                                     chat(HELLO, max_tokens=n, temperature=0, ignore_eos=True))
        self.assertEqual((status, r["choices"][0]["finish_reason"], r["usage"]["completion_tokens"]), (200, "length", n))
        self.assertTrue(r["choices"][0]["message"]["content"].startswith(short["choices"][0]["message"]["content"]))
        status, r = self.srv.request("POST", "/v1/chat/completions", chat(HELLO, ignore_eos="yes"))
        self.assertEqual(status, 400)
        self.assertIn("ignore_eos", r["error"]["message"])

    def test_disconnect_frees_the_slot(self):
        long = chat(HELLO, max_tokens=2000, temperature=1.0, seed=5, ignore_eos=True)
        for _ in range(PARALLEL):  # every slot once, each dropped after a few events
            self.assertEqual(len(self.srv.stream("/v1/chat/completions", long, limit=3)), 3)
        t0 = time.time()
        status, r = self.srv.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 4, "temperature": 0})
        self.assertEqual(status, 200)
        self.assertLess(time.time() - t0, 30)

    def test_a_prompt_seen_before_comes_from_the_cache(self):
        # One slot: the second prompt takes it, so the first comes back from the prompt
        # cache (its cells kept in host memory), with the text it got the first time.
        first = chat([{"role": "user", "content": "List the planets of the solar system, in order."}],
                     max_tokens=12, temperature=0)
        other = chat([{"role": "user", "content": "Why is the sky blue? Answer briefly."}], max_tokens=12,
                     temperature=0)
        for extra, cached in ((), True), (("--cache-ram", "0"), False):
            srv = Server("-np", "1", *extra)
            try:
                s1, a = srv.request("POST", "/v1/chat/completions", first)
                s2, _ = srv.request("POST", "/v1/chat/completions", other)
                s3, b = srv.request("POST", "/v1/chat/completions", first)
            finally:
                srv.stop()
            self.assertEqual((s1, s2, s3), (200, 200, 200))
            self.assertEqual(a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"])
            n = b["usage"]["prompt_tokens"]
            reused = b["usage"]["prompt_tokens_details"]["cached_tokens"]
            self.assertEqual(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
            if cached:
                self.assertEqual(reused, n - 1)  # all but the last token, whose logits start the reply
            else:
                self.assertLess(reused, n - 4)  # only what the two prompts share (the template's start)

    def test_full_queue_is_503(self):
        srv = Server("-np", "1", "--queue", "1")
        conns = []
        try:
            long = json.dumps(chat(HELLO, max_tokens=2000, temperature=1.0, seed=3, stream=True, ignore_eos=True))
            headers = {"Content-Type": "application/json", "Authorization": "Bearer " + KEY}
            first = srv.connect()  # holds the one slot
            first.request("POST", "/v1/chat/completions", body=long, headers=headers)
            r = first.getresponse()
            self.assertEqual(r.status, 200)
            r.fp.readline()
            second = srv.connect()  # waits in the queue
            second.request("POST", "/v1/chat/completions", body=long, headers=headers)
            conns = [first, second]
            deadline = time.time() + 60  # the second request is parsed and queued on its own thread
            while srv.request("GET", "/health", auth=False)[1]["requests_queued"] < 1 and time.time() < deadline:
                time.sleep(0.05)
            load = srv.request("GET", "/health", auth=False)[1]
            self.assertEqual((load["slots_processing"], load["slots_idle"], load["requests_queued"]), (1, 0, 1))
            status, body = srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=4))
            self.assertEqual(status, 503, body)
            self.assertIn("busy", body["error"]["message"])
            self.assertEqual(srv.request("GET", "/health", auth=False)[0], 200)
        finally:
            for c in conns:
                c.close()
            srv.stop()

    def test_signals_stop_the_server(self):
        # Started as a shell starts a background job (SIGINT ignored), the server still stops
        # on SIGINT, and on SIGTERM, with status 0, whichever thread the signal lands on.
        for sig in (signal.SIGINT, signal.SIGTERM):
            srv = Server("-np", "1", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
            try:
                self.assertEqual(srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=4))[0], 200)
                srv.proc.send_signal(sig)
                self.assertEqual(srv.proc.wait(timeout=30), 0, sig)
            finally:
                if srv.proc.poll() is None:
                    srv.proc.kill()
                    srv.proc.wait()

    def test_tokenize_round_trip(self):
        text = "Hello, world! Ünïcödé ✓"
        status, toks = self.srv.request("POST", "/tokenize", {"content": text})
        self.assertEqual(status, 200)
        status, back = self.srv.request("POST", "/detokenize", {"tokens": toks["tokens"]})
        self.assertEqual((status, back["content"]), (200, text))

    def test_errors(self):
        def check(status_want, response, param=None):
            status, body = response
            self.assertEqual(status, status_want, body)
            self.assertIn("message", body["error"])
            if param:
                self.assertEqual(body["error"]["param"], param)

        check(400, self.srv.request("POST", "/v1/chat/completions", raw="{not json"))
        check(400, self.srv.request("POST", "/v1/chat/completions", chat(HELLO, temperature="hot")), "temperature")
        check(400, self.srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=-3)), "max_tokens")
        check(400, self.srv.request("POST", "/v1/chat/completions", {"messages": "hi"}), "messages")
        check(400, self.srv.request("POST", "/v1/completions", {"prompt": 12}), "prompt")
        check(400, self.srv.request("POST", "/v1/chat/completions", raw="[" * 100000 + "]" * 100000))
        check(400, self.srv.request("POST", "/v1/chat/completions", raw=b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}'))
        check(400, self.srv.request("POST", "/v1/completions", {"prompt": "word " * 5000}), "prompt")
        check(400, self.srv.request("POST", "/v1/chat/completions", chat(HELLO, max_tokens=10 ** 30)), "max_tokens")
        check(401, self.srv.request("GET", "/v1/models", auth=False))
        check(401, self.srv.request("GET", "/v1/models", auth=False, headers={"Authorization": "Bearer wrong"}))
        check(404, self.srv.request("GET", "/v1/nothing"))
        check(413, self.srv.request("POST", "/v1/completions", raw="x" * (9 << 20)))
        self.assertEqual(self.srv.request("GET", "/health", auth=False)[0], 200)


try:
    import openai
except ImportError:
    openai = None


@unittest.skipIf(openai is None, "the openai client is not installed (scripts/setup.sh puts it in its venv)")
class OpenAIClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.client = openai.OpenAI(base_url=f"http://127.0.0.1:{cls.srv.port}/v1", api_key=KEY, max_retries=0)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_models(self):
        self.assertEqual(len(self.client.models.list().data), 1)

    def test_chat_whole_and_streamed(self):
        whole = self.client.chat.completions.create(model="m", messages=HELLO, max_tokens=16, temperature=0)
        text = whole.choices[0].message.content
        self.assertEqual(whole.choices[0].message.role, "assistant")
        self.assertGreater(len(text), 0)
        self.assertEqual(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens)
        stream = self.client.chat.completions.create(model="m", messages=HELLO, max_tokens=16, temperature=0,
                                                     stream=True, stream_options={"include_usage": True})
        parts, finish, usage = [], None, None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for c in chunk.choices:
                parts.append(c.delta.content or "")
                finish = c.finish_reason or finish
        self.assertEqual("".join(parts), text)
        self.assertEqual(finish, whole.choices[0].finish_reason)
        self.assertEqual(usage.completion_tokens, whole.usage.completion_tokens)

    def test_completion_max_tokens_and_seed(self):
        r = self.client.completions.create(model="m", prompt="The sky is", max_tokens=6, temperature=0)
        self.assertEqual(r.usage.completion_tokens, 6)
        self.assertEqual(r.choices[0].finish_reason, "length")
        a = self.client.completions.create(model="m", prompt="The sky is", max_tokens=8, temperature=1, seed=7)
        b = self.client.completions.create(model="m", prompt="The sky is", max_tokens=8, temperature=1, seed=7)
        self.assertEqual(a.choices[0].text, b.choices[0].text)

    def test_errors(self):
        with self.assertRaises(openai.BadRequestError) as e:
            self.client.chat.completions.create(model="m", messages=HELLO, temperature=5)
        self.assertIn("temperature", str(e.exception))
        bad = openai.OpenAI(base_url=f"http://127.0.0.1:{self.srv.port}/v1", api_key="wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad.models.list()


if __name__ == "__main__":
    if not os.path.exists(MODEL):
        print(f"SKIP: model not downloaded ({MODEL}; run scripts/get-model.sh smollm2-135m-instruct)")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0], "-v"])
