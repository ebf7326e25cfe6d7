"""The OpenAI-compatible backend against a scripted HTTP server on loopback (no network, no GPU)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pytest

from conftest import write_jsonl
from datakit.backends import OpenAIOptions, SamplingParams
from datakit.backends.openai import OpenAIBackend
from datakit.errors import BackendError, DatakitError
from datakit.sample import SampleConfig, run_sample
from datakit.backends import BackendConfig


MALFORMED = b'{"choices": [{"message": {"content": "cut sho'  # a 200 whose JSON stops mid-reply
NO_CHOICES = b'{"id": "x", "object": "chat.completion", "choices": []}'


class FakeServer:
    """Answers chat completions. `script` lists what to do for the next requests before answering
    normally: an HTTP status, or a misbehaviour: "malformed" (a 200 with broken JSON), "no_choices"
    (a 200 with an empty choices list), "endless" (a 200 whose body never ends), "drop" (close the
    connection without a reply). Past `hold_after` requests, answers wait until the server closes
    (`held` is set then), so a test can interrupt a client that is certainly mid-run."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[int | str] = []
        self.hold_after: int | None = None
        self.held = threading.Event()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    status = server.script.pop(0) if server.script else 200
                if isinstance(status, str):
                    self.misbehave(status)
                    return
                if status != 200:
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                if server.hold_after is not None and len(server.requests) > server.hold_after:
                    server.held.set()
                    server.stop.wait()
                question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
                content = server.reply_for(question)
                reply = {
                    "choices": [{
                        "message": {"role": "assistant", "reasoning_content": f"thinking about {question}" if content is None else None, "content": content or f"seed {body['seed']}"},
                        "finish_reason": server.finish_for(question),
                    }],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def misbehave(self, how: str) -> None:
                if how == "drop":
                    self.close_connection = True
                    return
                body = {"malformed": MALFORMED, "no_choices": NO_CHOICES, "endless": b'{"choices": ['}[how]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) + (10**6 if how == "endless" else 0)))
                self.end_headers()
                self.wfile.write(body)
                while how == "endless" and not server.stop.wait(0.05):  # a byte now and then, never the rest
                    self.wfile.write(b" ")
                    self.wfile.flush()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeout, Ctrl-C) breaks the pipe; not the server's failure

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply_for(self, prompt: str) -> str | None:
        """The reply's content; None: a reasoning model's reply (reasoning_content + "seed N")."""
        return None

    def finish_for(self, prompt: str) -> str:
        """Why generation stopped: "length" (cut off) for prompts that ask for something long."""
        return "length" if "long" in prompt else "stop"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.close()


def _backend(server: FakeServer, **options: Any) -> OpenAIBackend:
    return OpenAIBackend("teacher", OpenAIOptions(base_url=server.url, **{"max_retries": 3, **options}))


def test_n_samples_per_prompt_with_reasoning_content(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    seen: list[tuple[int, int]] = []
    results = _backend(server).generate(
        [[{"role": "user", "content": "2+2?"}], [{"role": "user", "content": "a long one"}]],
        SamplingParams(n=3, max_tokens=100), seeds=[10, 20], on_progress=lambda prompts, tokens: seen.append((prompts, tokens)),
    )
    assert len(server.requests) == 6
    assert sorted(seen) == sorted((1, r.completion_tokens) for r in results)  # a line per prompt as it ends
    assert [g.text for g in results[0].generations] == [
        f"<think>\nthinking about 2+2?\n</think>\n\nseed {s}" for s in (10, 11, 12)
    ]
    assert results[1].generations[0].finish_reason == "length" and results[0].generations[0].finish_reason == "stop"
    assert results[0].prompt_tokens == 11 and results[0].generations[0].completion_tokens == 7
    body = server.requests[0]
    assert body["model"] == "teacher" and body["temperature"] == 0.6 and body["top_p"] == 0.95 and body["max_tokens"] == 100
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_retries_on_429_and_5xx_then_succeeds(server: FakeServer) -> None:
    server.script = [429, 503, 500]
    results = _backend(server).generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), seeds=[0])
    assert results[0].generations[0].text.endswith("seed 0")
    assert len(server.requests) == 4


def test_gives_up_after_max_retries_with_the_last_error(server: FakeServer) -> None:
    server.script = [503] * 10
    with pytest.raises(DatakitError, match="gave up after 3 attempts; last error: HTTP 503"):
        _backend(server, max_retries=2).generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), seeds=[0])


# One misbehaviour per row: what the last error names once the retries run out.
MISBEHAVIOURS = {
    "malformed": "HTTP 200 but not JSON (Unterminated string starting at: line 1 column 38 (char 37)): " + repr(MALFORMED.decode()),
    "no_choices": "HTTP 200 but no chat completion in it (no choices): " + repr(NO_CHOICES.decode()),
    "endless": "TimeoutError: no complete reply within 1 s",
    "drop": "RemoteProtocolError: Server disconnected without sending a response.",
    500: "HTTP 500: {\"error\": \"busy\"}",
}


@pytest.mark.parametrize("fault", list(MISBEHAVIOURS), ids=str)
def test_a_misbehaving_server_is_retried_like_a_5xx(server: FakeServer, fault: int | str) -> None:
    server.script = [fault, fault]
    results = _backend(server, timeout_s=1).generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), seeds=[0])
    assert results[0].generations[0].text.endswith("seed 0") and len(server.requests) == 3


@pytest.mark.parametrize("fault", list(MISBEHAVIOURS), ids=str)
def test_a_server_that_keeps_misbehaving_is_named_with_what_came_back(server: FakeServer, fault: int | str) -> None:
    server.script = [fault] * 3
    with pytest.raises(BackendError) as caught:
        _backend(server, max_retries=2, timeout_s=1).generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), seeds=[0])
    assert str(caught.value) == f"{server.url}/chat/completions: gave up after 3 attempts; last error: {MISBEHAVIOURS[fault]}"
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server: FakeServer) -> None:
    server.script = [400]
    with pytest.raises(DatakitError, match="refused the request.*HTTP 400"):
        _backend(server).generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), seeds=[0])
    assert len(server.requests) == 1


def test_timeouts_are_retried() -> None:
    backend = OpenAIBackend("m", OpenAIOptions(base_url="http://127.0.0.1:9/v1", max_retries=1, timeout_s=0.5))
    with pytest.raises(DatakitError, match="gave up after 2 attempts; last error: Connect"):
        backend.generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), seeds=[0])


def test_sample_stage_through_the_server(server: FakeServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "question": f"q{i}?", "answer": "1", "domain": "math"} for i in range(5)])
    config = SampleConfig(
        input=str(source), output=str(tmp_path / "out"), model="deepseek-reasoner", progress=False,
        sampling=SamplingParams(n=2), backend=BackendConfig(name="openai", openai=OpenAIOptions(base_url=server.url)),
    )
    summary = run_sample(config)
    rows = pl.read_parquet(tmp_path / "out" / "shards" / "*.parquet")
    assert summary.rows == rows.height == 10
    assert rows["reasoning"][0].startswith("thinking about q0?") and rows["answer"][0].startswith("seed ")
    assert set(rows["generator"]) == {"deepseek-reasoner"}
