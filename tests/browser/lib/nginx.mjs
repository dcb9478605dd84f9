// nginx.mjs — Debian's nginx on 127.0.0.1, proxying /cam1/ to a daemon with the configuration
// block that README.md documents (section "Reverse proxy (nginx)"), so the README is tested.
//
// Interface:
//   readmeNginxBlock()              {http, server}: the README's block, split at its
//                                   "In the server {} block" comment
//   startNginx(daemonPort)          {port, url (ending in /cam1/), stop()}

import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO, freePort, scaled, track, waitFor } from "./harness.mjs";

export function readmeNginxBlock() {
  const readme = readFileSync(path.join(REPO, "README.md"), "utf8");
  const section = readme.split(/^## Reverse proxy \(nginx\)$/m)[1];
  if (!section) throw new Error('README.md has no "## Reverse proxy (nginx)" section');
  const block = section.match(/```nginx\n([\s\S]*?)```/);
  if (!block) throw new Error("README.md: no ```nginx block in the reverse proxy section");
  const [http, server] = block[1].split(/^# In the server \{\} block.*$/m);
  if (server === undefined) throw new Error("README.md: the nginx block lacks its server part");
  return { http, server };
}

function nginxBinary() {
  for (const candidate of ["/usr/sbin/nginx", "/usr/bin/nginx"]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("nginx is missing: install Debian's nginx (make deps)");
}

export async function startNginx(daemonPort) {
  const binary = nginxBinary();
  const { http, server } = readmeNginxBlock();
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "pyimagestream-nginx-"));
  mkdirSync(path.join(dir, "tmp"));
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((name) => `    ${name}_temp_path ${dir}/tmp/${name};`)
    .join("\n");
  const conf = `
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
${temp}
${http}
    server {
        listen 127.0.0.1:${port};
${server.replaceAll("127.0.0.1:8888", `127.0.0.1:${daemonPort}`)}
    }
}
`;
  writeFileSync(path.join(dir, "nginx.conf"), conf);
  const child = track(
    spawn(binary, ["-e", `${dir}/error.log`, "-p", dir, "-c", `${dir}/nginx.conf`], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let log = "";
  child.stdout.on("data", (c) => (log += c));
  child.stderr.on("data", (c) => (log += c));
  const exited = once(child, "exit").then(([code]) => {
    const errors = existsSync(`${dir}/error.log`) ? readFileSync(`${dir}/error.log`, "utf8") : "";
    throw new Error(`nginx exited with ${code}:\n${log}\n${errors}`);
  });
  exited.catch(() => {});
  const url = `http://127.0.0.1:${port}/cam1/`;
  await Promise.race([
    waitFor("nginx to serve /cam1/", async () => (await fetch(url)).ok, 10_000),
    exited,
  ]);
  return {
    port,
    url,
    conf,
    async stop() {
      if (child.exitCode === null) {
        const done = once(child, "exit");
        child.kill("SIGQUIT"); // graceful: finish and close the proxied connections
        const timer = setTimeout(() => child.kill("SIGKILL"), scaled(5000));
        await done;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
