// tus-js-client, as Uppy and browsers use it, against /api/uploads:
// 1. a resumable upload in 64 KiB chunks is aborted after its first chunk, and a new
//    client resumes it from the stored offset (HEAD, then PATCH from there) to the end;
//    the item it made holds exactly the bytes sent. With SECOND_BASE_URL (two nodes
//    sharing uploads, MULTI_NODE=true) the new client resumes on the second node;
// 2. the same content again is refused (duplicate_content), and the refusal must take
//    exactly ONE request: a refusal tus-js-client retries (409 is retried by design, as
//    an offset conflict) makes every retrying client send the file again and again.
import { createHash } from "node:crypto";
import { Upload, DetailedError, type HttpRequest, type HttpResponse } from "tus-js-client";
import { required } from "./mail.js";

const baseUrl = required("BASE_URL");
const token = required("TOKEN");
const projectId = required("PROJECT_ID");
const endpoint = `${baseUrl}/api/uploads`;
// Another node on the same database and blob store, where uploads are resumed.
const secondBaseUrl = process.env.SECOND_BASE_URL;
const chunkSize = 64 * 1024;
// Short delays keep the run quick; they are retries all the same.
const retryDelays = [0, 200, 500, 1000];

interface Exchange {
  method: string;
  url: string;
  offset?: string;
  status?: number;
  body?: string;
}

function check(condition: boolean, what: string, detail?: unknown): asserts condition {
  if (!condition) {
    throw new Error(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

/** Options shared by every upload, recording each request and its answer in `log`. */
function options(log: Exchange[], name: string) {
  return {
    endpoint,
    chunkSize,
    retryDelays,
    headers: { Authorization: `Bearer ${token}` },
    metadata: { project_id: projectId, kind: "document", filename: name, filetype: "text/plain" },
    onBeforeRequest(req: HttpRequest) {
      log.push({ method: req.getMethod(), url: req.getURL(), offset: req.getHeader("Upload-Offset") });
    },
    onAfterResponse(req: HttpRequest, res: HttpResponse) {
      const exchange = [...log].reverse().find((e) => e.url === req.getURL() && e.status === undefined);
      if (exchange) {
        exchange.status = res.getStatus();
        exchange.body = res.getBody();
      }
    },
  };
}

function withDeadline<T>(what: string, promise: Promise<T>): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no end within 60 s`)), 60_000)),
  ]);
}

function show(log: Exchange[]): string {
  return log.map((e) => `${e.method} ${e.offset ?? ""} → ${e.status ?? "?"}`).join(", ");
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${baseUrl}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Tus-Resumable": "1.0.0", ...init.headers },
  });
}

/** `url` (an upload's address on one node) on the node at `base`. */
function onNode(url: string, base: string): string {
  const moved = new URL(url);
  const target = new URL(base);
  moved.protocol = target.protocol;
  moved.host = target.host;
  return moved.toString();
}

async function resumeAfterAbort(content: Buffer, resumeBase: string = baseUrl): Promise<string> {
  // First client: stops after the first chunk is stored.
  const firstLog: Exchange[] = [];
  let uploadUrl: string | null = null;
  await withDeadline(
    "the first chunk",
    new Promise<void>((resolve, reject) => {
      const upload: Upload = new Upload(content, {
        ...options(firstLog, "resumed.txt"),
        onChunkComplete(_size, accepted) {
          if (accepted >= chunkSize) {
            uploadUrl = upload.url;
            upload.abort().then(resolve, reject);
          }
        },
        onSuccess: () => reject(new Error("the upload finished before it could be aborted")),
        onError: reject,
      });
      upload.start();
    }),
  );
  check(uploadUrl !== null, "an upload URL after the first chunk");
  const head = await api(new URL(uploadUrl).pathname, { method: "HEAD" });
  check(head.status === 200, "HEAD after the abort", head.status);
  check(head.headers.get("Upload-Offset") === String(chunkSize), "the first chunk is stored", head.headers.get("Upload-Offset"));

  // A second client (a reload, another tab, or a request the load balancer sent to
  // another node) resumes from the server's offset.
  const resumeUrl = onNode(uploadUrl, resumeBase);
  const resumeLog: Exchange[] = [];
  const itemId = await withDeadline(
    "the resumed upload",
    new Promise<string>((resolve, reject) => {
      const upload = new Upload(content, {
        ...options(resumeLog, "resumed.txt"),
        uploadUrl: resumeUrl,
        onSuccess: ({ lastResponse }) => resolve(lastResponse.getHeader("Alta-Item-Id") ?? ""),
        onError: reject,
      });
      upload.start();
    }),
  );
  check(resumeLog[0]?.method === "HEAD", "resuming starts with HEAD", show(resumeLog));
  check(!resumeLog.some((e) => e.method === "POST"), "resuming creates no new upload", show(resumeLog));
  const firstPatch = resumeLog.find((e) => e.method === "PATCH");
  check(firstPatch?.offset === String(chunkSize), "resuming sends from the stored offset", show(resumeLog));
  check(itemId !== "", "the last chunk's answer names the item (Alta-Item-Id)", show(resumeLog));
  check(
    resumeLog.every((e) => e.url.startsWith(resumeBase)),
    `every resuming request goes to ${resumeBase}`,
    resumeLog.map((e) => e.url),
  );

  const item = await api(`/api/documents/${itemId}`);
  check(item.status === 200, `GET /api/documents/${itemId}`, item.status);
  const body = (await item.json()) as { size_bytes: number; sha256: string; status: string };
  const sha256 = createHash("sha256").update(content).digest("hex");
  check(body.size_bytes === content.length, "the item has every byte", body.size_bytes);
  check(body.sha256 === sha256, "the item's bytes are the ones sent", body.sha256);
  return itemId;
}

async function duplicateIsRefusedOnce(content: Buffer) {
  const log: Exchange[] = [];
  const error = await withDeadline(
    "the duplicate upload",
    new Promise<Error>((resolve, reject) => {
      const upload = new Upload(content, {
        ...options(log, "again.txt"),
        onSuccess: () => reject(new Error(`the same content was accepted twice: ${show(log)}`)),
        onError: resolve,
      });
      upload.start();
    }),
  );
  const refusals = log.filter((e) => e.status !== undefined && e.status >= 400 && e.status < 500);
  const response = error instanceof DetailedError ? error.originalResponse : null;
  console.log(`tus: the duplicate took ${log.length} requests: ${show(log)}`);
  check(response !== null, "the upload failed with the server's answer", error.message);
  const problem = JSON.parse(response.getBody() || "{}") as { code?: string };
  check(problem.code === "duplicate_content", "the refusal says duplicate_content", response.getBody());
  check(
    refusals.length === 1 && log[log.length - 1] === refusals[0],
    `the refusal must be exactly one request, not ${refusals.length} refused requests of ${log.length} ` +
      `(the last refusal was ${response.getStatus()}; a refusal tus-js-client retries sends the file again)`,
  );
}

async function main() {
  const run = Date.now().toString(36);
  const lines = Array.from({ length: 8192 }, (_, n) => `line ${n} of the resumable text ${run}\n`);
  const content = Buffer.from(lines.join(""));
  check(content.length > 3 * chunkSize, "the text spans several chunks", content.length);

  if (secondBaseUrl) {
    const itemId = await resumeAfterAbort(content, secondBaseUrl);
    console.log(`tus: aborted after one chunk on ${baseUrl}, resumed to the end on ${secondBaseUrl}: item ${itemId}`);
  } else {
    const itemId = await resumeAfterAbort(content);
    console.log(`tus: aborted after one chunk, resumed to the end: item ${itemId}`);
    await duplicateIsRefusedOnce(content);
  }
  console.log("tus: ok");
}

main().catch((error: unknown) => {
  console.error("tus: FAILED:", error instanceof Error ? error.message : error);
  process.exit(1);
});
