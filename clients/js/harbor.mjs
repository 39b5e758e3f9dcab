// What the ngsijs tests share: the release binary started on a free loopback port with a
// fresh data directory, and the application's own HTTP server (it serves the application's
// @context and receives notifications). The Python tests have the same pair in harbor.py.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export const CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld";

// The Smart Data Models terms the tests use, each mapped to the IRI the Smart Data Models
// publish for it (`status` and `location` are the core context's).
export const APP_CONTEXT = {
  "@context": {
    OffStreetParking: "https://smartdatamodels.org/dataModel.Parking/OffStreetParking",
    AirQualityObserved: "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved",
    availableSpotNumber: "https://smartdatamodels.org/dataModel.Parking/availableSpotNumber",
    totalSpotNumber: "https://smartdatamodels.org/dataModel.Parking/totalSpotNumber",
    category: "https://smartdatamodels.org/dataModel.Parking/category",
    name: "https://smartdatamodels.org/name",
    address: "https://smartdatamodels.org/address",
    no2: "https://smartdatamodels.org/dataModel.Environment/no2",
    pm10: "https://smartdatamodels.org/dataModel.Environment/pm10",
    airQualityLevel: "https://smartdatamodels.org/dataModel.Environment/airQualityLevel",
    dateObserved: "https://smartdatamodels.org/dateObserved",
  },
};

/** The release binary: $INFOHARBOR_BIN, or target/release/infoharbor of this checkout. */
function binary() {
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, "target");
  const path = process.env.INFOHARBOR_BIN ?? join(target, "release", "infoharbor");
  if (!existsSync(path)) {
    throw new Error(
      `${path} does not exist: build it with \`cargo build --release -p infoharbor\` (scripts/test.sh does)`,
    );
  }
  return path;
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createNetServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts one broker and waits for /health; `stop()` ends it and removes its data. */
export async function startBroker() {
  const dir = mkdtempSync(join(tmpdir(), "infoharbor-ngsijs-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logPath = join(dir, "broker.log");
  const log = openSync(logPath, "w");
  const child = spawn(
    binary(),
    [
      "serve",
      "--listen", `127.0.0.1:${port}`,
      "--data-dir", join(dir, "data"),
      "--egress-allow", "127.0.0.0/8,::1",
      "--notify-retry-ms", "200",
    ],
    { stdio: ["ignore", log, log], env: { ...process.env, NO_COLOR: "1" } },
  );
  let exited = null;
  child.on("exit", (code) => (exited = code));
  const logTail = () => readFileSync(logPath, "utf8").split("\n").slice(-40).join("\n");

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited !== null) throw new Error(`the broker exited at start:\n${logTail()}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the broker did not answer /health in 15 s:\n${logTail()}`);
    await sleep(100);
  }

  return {
    url,
    logTail,
    async stop() {
      if (exited === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The application's server: GET /context.jsonld answers APP_CONTEXT; every POST is kept. */
export async function startReceiver() {
  const notifications = [];
  const waiters = new Set();
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/context.jsonld") {
      res.writeHead(200, { "Content-Type": "application/ld+json" });
      res.end(JSON.stringify(APP_CONTEXT));
      return;
    }
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      notifications.push({ path: req.url, headers: req.headers, body: JSON.parse(text || "null") });
      for (const w of waiters) w();
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;

  return {
    url,
    contextUrl: `${url}/context.jsonld`,
    received: (path) => notifications.filter((n) => n.path === path),
    /** The first notification POSTed to `path` whose body satisfies `predicate`. */
    wait(path, predicate = () => true, timeoutMs = 10_000) {
      return new Promise((ok, fail) => {
        const check = () => {
          const hit = notifications.find((n) => n.path === path && predicate(n.body));
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            ok(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const got = JSON.stringify(notifications.filter((n) => n.path === path).map((n) => n.body));
          fail(new Error(`no matching notification at ${path} in ${timeoutMs} ms; got ${got}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    stop: () => new Promise((r) => server.close(r)),
  };
}
