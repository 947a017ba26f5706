// hark service worker: the app works offline after the first visit.
//
// * App shell (index.html, the page's wasm and JS, styles, icons, the audio
//   worklet, and the one recognition worker this browser runs — the WebGPU
//   build where an adapter exists, as the page decides, else the CPU one):
//   precached at install into a cache named after the build, served
//   cache-first, so a page always runs one consistent version. Files fetched
//   later (the other worker, if `?backend=` asked for it) join it on use.
// * A new deploy changes build.js (written by trunk's post_build hook, see
//   Trunk.toml), so the browser installs the new worker beside the old one;
//   it then *waits* until the person accepts "Reload to update" in the page,
//   which posts "skip-waiting".
// * Model weights and the manifest copy live in "hark-models-v1", written by
//   the recognition worker's model manager (it checks sha256 and prunes old
//   models); here model files are served cache-first and the manifest
//   network-first with the stored copy as the offline fallback.
// * The collector API is never cached, and nothing is sent anywhere from here.
importScripts("build.js");

const BUILD = self.HARK_BUILD || "dev";
const SHELL_CACHE = `hark-shell-${BUILD}`;
const MODEL_CACHE = "hark-models-v1";
const FIXED_SHELL = [
  "./",
  "manifest.webmanifest",
  "audio-worklet.js",
  "icons/icon-192.png",
  "icons/icon-512.png",
];

// The recognition worker program this browser will run: the page starts
// the WebGPU build when `navigator.gpu` offers an adapter (it is exposed to
// service workers too), else the CPU build. Only that one is downloaded.
async function workerFiles() {
  const adapter = (async () => {
    try {
      return !!(self.navigator.gpu && (await self.navigator.gpu.requestAdapter()));
    } catch (e) {
      return false;
    }
  })();
  const timeout = new Promise((resolve) => setTimeout(() => resolve(false), 3000));
  const name = (await Promise.race([adapter, timeout])) ? "hark-worker-gpu" : "hark-worker";
  return [`${name}_loader.js`, `${name}.js`, `${name}_bg.wasm`];
}

// Everything index.html links to (trunk gives those files hashed names).
async function shellFiles() {
  const response = await fetch("./", { cache: "no-store" });
  const html = await response.text();
  const linked = [...html.matchAll(/(?:href|src)="([^"]+)"/g)]
    .map((m) => m[1])
    .filter((u) => !/^[a-z]+:/i.test(u) && !u.startsWith("//") && !u.includes("models/"))
    .map((u) => u.replace(/^\//, ""));
  return [...new Set([...FIXED_SHELL, ...(await workerFiles()), ...linked])];
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    shellFiles().then(async (files) => {
      const cache = await caches.open(SHELL_CACHE);
      await cache.addAll(files);
    })
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) =>
        Promise.all(keys.filter((k) => k.startsWith("hark-shell-") && k !== SHELL_CACHE).map((k) => caches.delete(k)))
      )
      .then(() => self.clients.claim())
  );
});

// The page asks a waiting worker to take over after the person agreed to reload.
self.addEventListener("message", (event) => {
  if (event.data === "skip-waiting") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.includes("/v1/") || url.pathname.endsWith("/build.js")) return;

  if (url.pathname.includes("/models/")) {
    if (url.pathname.endsWith("manifest.json")) {
      // Offline: the stored copy, marked so the model manager can say so.
      event.respondWith(
        fetch(request).catch(async () => {
          const stored = await caches.match(request, { ignoreSearch: true });
          if (!stored) return Response.error();
          const headers = new Headers(stored.headers);
          headers.set("x-hark-offline", "1");
          return new Response(await stored.blob(), { status: 200, headers });
        })
      );
      return;
    }
    event.respondWith(
      caches.open(MODEL_CACHE).then(async (cache) => (await cache.match(request)) || fetch(request))
    );
    return;
  }

  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // Navigations (any query string) get the cached index.html.
      const key = request.mode === "navigate" ? "./" : request;
      const hit = await cache.match(key, { ignoreSearch: request.mode === "navigate" });
      if (hit) return hit;
      try {
        const response = await fetch(request);
        // Files fetched on use (a worker not precached) join this build's
        // shell, so they work offline too.
        if (response.ok && request.mode !== "navigate") cache.put(request, response.clone());
        return response;
      } catch (e) {
        return (await caches.match(request)) || Response.error();
      }
    })()
  );
});
