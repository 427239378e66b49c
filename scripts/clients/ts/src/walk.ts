// A frontend's walk through the API with openapi-fetch, typed by openapi-typescript from
// the served document: register → verify → login → create a project → upload a text
// document → wait until ready → submit → a reviewer (invited, signed up) approves it; then
// page the project's documents one at a time to the end. Any surprise throws.
import createClient from "openapi-fetch";
import { setTimeout as sleep } from "node:timers/promises";
import type { paths } from "./generated/api.js";
import { mailedToken, required } from "./mail.js";

const baseUrl = required("BASE_URL");
const password = "violet tangent harbour 42";
const run = Date.now().toString(36);

type Client = ReturnType<typeof createClient<paths>>;

function check(condition: boolean, what: string, detail?: unknown): asserts condition {
  if (!condition) {
    throw new Error(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

function clientFor(token?: string): Client {
  return createClient<paths>({
    baseUrl,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
}

/** Sign up, confirm the address from the mailed link, sign in: a client for that user. */
async function signUp(email: string): Promise<Client> {
  const anonymous = clientFor();
  const registered = await anonymous.POST("/api/auth/register", {
    body: { email, password, full_name: `Walker ${email}` },
  });
  check(registered.response.status === 201, `register ${email}`, registered.error);

  const token = await mailedToken(email, /verify-email\?token=([A-Za-z0-9_-]+)/);
  const verified = await anonymous.GET("/api/auth/verify-email", {
    params: { query: { token } },
  });
  check(verified.response.status === 200, `verify ${email}`, verified.error);

  const login = await anonymous.POST("/api/auth/login", { body: { email, password } });
  check(login.data !== undefined, `login ${email}`, login.error);
  check(login.data.token_type === "bearer", "token_type is bearer", login.data.token_type);
  return clientFor(login.data.access_token);
}

/** A one-shot multipart upload of a small text file; the new item's id. */
async function uploadText(client: Client, projectId: string, name: string, text: string) {
  const uploaded = await client.POST("/api/documents", {
    body: { project_id: projectId, file: text, title: name },
    // project_id must come before the file part.
    bodySerializer(body) {
      const form = new FormData();
      form.append("project_id", body.project_id ?? projectId);
      if (body.title) form.append("title", body.title);
      form.append("file", new Blob([body.file], { type: "text/plain" }), `${name}.txt`);
      return form;
    },
  });
  check(uploaded.data !== undefined, `upload ${name}`, uploaded.error);
  check(uploaded.response.status === 201, `upload ${name} is 201`, uploaded.response.status);
  check(uploaded.data.kind === "document", "an uploaded text is a document", uploaded.data.kind);
  return uploaded.data.id;
}

async function waitUntilReady(client: Client, id: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const item = await client.GET("/api/documents/{id}", { params: { path: { id } } });
    check(item.data !== undefined, `read document ${id}`, item.error);
    if (item.data.status === "ready") return item.data;
    check(item.data.status !== "processing_failed", "processing failed", item.data);
    check(Date.now() < deadline, `document ${id} not ready within 60 s`, item.data.status);
    await sleep(200);
  }
}

async function main() {
  const ownerEmail = `ts-owner-${run}@example.org`;
  const reviewerEmail = `ts-reviewer-${run}@example.org`;
  const owner = await signUp(ownerEmail);

  const me = await owner.GET("/api/auth/me");
  check(me.data?.email === ownerEmail, "GET /api/auth/me names the owner", me.data);

  const project = await owner.POST("/api/projects", {
    body: { name: `TypeScript walk ${run}`, description: "openapi-fetch" },
  });
  check(project.data !== undefined, "create a project", project.error);
  const projectId = project.data.id;

  const first = await uploadText(owner, projectId, "first", `The first text of ${run}.\n`);
  const ready = await waitUntilReady(owner, first);
  check(ready.id === first, "the ready item is the uploaded one");

  const submitted = await owner.POST("/api/projects/{project_id}/review", {
    params: { path: { project_id: projectId } },
    body: { item_ids: [first] },
  });
  check(submitted.data !== undefined, "submit for review", submitted.error);
  check(
    submitted.data.items.every((item) => item.status === "pending_review"),
    "submitted items are pending_review",
    submitted.data.items.map((item) => item.status),
  );

  // The owner may not review their own item: a reviewer is invited and signs up.
  const invited = await owner.POST("/api/projects/{project_id}/invite", {
    params: { path: { project_id: projectId } },
    body: { email: reviewerEmail, role: "reviewer" },
  });
  check(invited.response.status === 201, "invite a reviewer", invited.error);
  const reviewer = await signUp(reviewerEmail);
  const invitation = await mailedToken(reviewerEmail, /invitations\/accept\?token=([A-Za-z0-9_-]+)/);
  const accepted = await reviewer.POST("/api/projects/invitations/{token}/accept", {
    params: { path: { token: invitation } },
  });
  check(accepted.response.status === 200, "accept the invitation", accepted.error);

  const next = await reviewer.POST("/api/review/next", {
    params: { query: { project_id: projectId } },
  });
  check(next.response.status === 200 && next.data !== undefined, "lease the queue head", next.error);
  check(next.data.item.id === first, "the reviewer gets the submitted item", next.data.item.id);

  const decided = await reviewer.PATCH("/api/review/{id}", {
    params: { path: { id: first } },
    body: { decision: "approve", comment: "Reads well." },
  });
  check(decided.data !== undefined, "approve", decided.error);
  check(decided.data.item.status === "approved", "the item is approved", decided.data.item.status);

  // Paging: three documents, one per page, following next_cursor until it is absent.
  const uploaded = new Set([
    first,
    await uploadText(owner, projectId, "second", `The second text of ${run}.\n`),
    await uploadText(owner, projectId, "third", `The third text of ${run}.\n`),
  ]);
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let page = 1; ; page++) {
    check(page <= uploaded.size + 1, "paging ends", seen);
    const listed = await owner.GET("/api/documents", {
      params: { query: { project_id: projectId, limit: 1, cursor } },
    });
    check(listed.data !== undefined, `list page ${page}`, listed.error);
    check(listed.data.items.length <= 1, "limit=1 gives at most one item", listed.data.items.length);
    seen.push(...listed.data.items.map((item) => item.id));
    check(!("next_cursor" in listed.data && listed.data.next_cursor === null), "next_cursor is never null");
    if (listed.data.next_cursor === undefined) break;
    cursor = listed.data.next_cursor;
  }
  check(seen.length === uploaded.size, "every document once", seen);
  check(seen.every((id) => uploaded.has(id)), "exactly the uploaded documents", seen);

  console.log(`typescript walk: ok (project ${projectId}, ${seen.length} documents paged one by one)`);
}

main().catch((error: unknown) => {
  console.error("typescript walk: FAILED:", error instanceof Error ? error.message : error);
  process.exit(1);
});
