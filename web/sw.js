// hark service worker: keeps the app shell and the current model available
// offline. Network first for the shell (so a new deploy is seen at once),
// cache first for model files (they are immutable: named by version + sha256).
// The collector API is never cached, and nothing is sent anywhere from here.
const SHELL_CACHE = "hark-shell-v1";
const MODEL_CACHE = "hark-models-v1";

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL_CACHE).then((cache) => cache.addAll(["./", "./manifest.webmanifest"]))
  );
});

self.addEventListener("activate", (event) => {
  const keep = new Set([SHELL_CACHE, MODEL_CACHE]);
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => !keep.has(k)).map((k) => caches.delete(k))))
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
  if (url.pathname.includes("/api/")) return;

  const isModelBlob = url.pathname.includes("/models/") && !url.pathname.endsWith("manifest.json");
  if (isModelBlob) {
    event.respondWith(
      caches.open(MODEL_CACHE).then(async (cache) => {
        const hit = await cache.match(request);
        if (hit) return hit;
        const response = await fetch(request);
        if (response.ok) cache.put(request, response.clone());
        return response;
      })
    );
    return;
  }

  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(SHELL_CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(async () => (await caches.match(request)) || (await caches.match("./")) || Response.error())
  );
});
