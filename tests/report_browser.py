#!/usr/bin/python3
"""Load report pages in headless Chromium over the DevTools protocol (its pipe transport:
fds 3 and 4, NUL-terminated JSON; Python standard library only) and check each one:
no console errors, exceptions or failed loads; no network request; every chart has
drawn data (checked in the DOM); the legend hides and shows a run; a screenshot that is
not blank.

usage: report_browser.py [--screenshot PNG] [--charts N] PAGE.html...
exit status: 0 all pages pass, 1 a check failed, 77 chromium cannot start (the caller
prints the reason and skips)."""
import base64, json, os, select, subprocess, sys, tempfile, time, zlib

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--hide-scrollbars"]


class Browser:
    def __init__(self, binary):
        self.profile = tempfile.mkdtemp(prefix="parcnn-chromium-")
        to_chrome, self.w = os.pipe()
        self.r, from_chrome = os.pipe()

        def pipes():  # the child's fds 3 (commands in) and 4 (replies out)
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        self.proc = subprocess.Popen([binary, *FLAGS, "--user-data-dir=" + self.profile, "about:blank"],
                                     preexec_fn=pipes, pass_fds=(3, 4),  # kept: the dup2s above
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self.buf, self.next_id, self.events = b"", 0, []

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self.receive(timeout)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m["result"]
            self.events.append(m)

    def receive(self, timeout):
        deadline = time.time() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def wait_event(self, method, timeout=60):
        deadline = time.time() + timeout
        while True:
            for e in self.events:
                if e.get("method") == method:
                    return e
            self.events.append(self.receive(deadline - time.time()))

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile])


def png_pixels(data):
    """Width, height, channels and the raw pixels of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big"), body[8], body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert depth == 8 and color in (2, 6), (depth, color)
    ch = 3 if color == 2 else 4
    raw, stride, out, prev = zlib.decompress(idat), w * ch, bytearray(), bytearray(w * ch)
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1: row[i] = (row[i] + a) & 255
            elif f == 2: row[i] = (row[i] + b) & 255
            elif f == 3: row[i] = (row[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += row
        prev = row
    return w, h, ch, bytes(out)


# Per chart: what it drew. A line chart counts the points of its polylines and markers,
# a bar chart its bars of non-zero height, the heat map its cells.
DOM_PROBE = r"""JSON.stringify({
  charts: Array.from(document.querySelectorAll('figure.chart')).map(function (f) {
    var points = 0;
    f.querySelectorAll('polyline.line').forEach(function (l) {
      points += l.getAttribute('points').trim().split(/\s+/).filter(Boolean).length; });
    return {id: f.id, points: points, markers: f.querySelectorAll('.series circle').length,
            bars: Array.from(f.querySelectorAll('rect.bar')).filter(function (r) {
              return parseFloat(r.getAttribute('height')) > 0; }).length,
            cells: f.querySelectorAll('rect.cell').length,
            width: f.getBoundingClientRect().width};
  }),
  runs: document.querySelectorAll('.legend span').length,
  images: Array.from(document.querySelectorAll('.sample img')).filter(function (i) {
    return i.complete && i.naturalWidth > 0; }).length,
  resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })
})"""

TOGGLE = r"""(function () {
  var item = document.querySelector('.legend span'), g = document.querySelector('.series[data-run="0"]');
  item.click(); var hidden = getComputedStyle(g).display === 'none';
  item.click(); var shown = getComputedStyle(g).display !== 'none';
  return hidden && shown; })()"""


def check_page(b, path, screenshot, min_charts):
    problems = []
    target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ["Runtime", "Log", "Page"]:
        b.send(domain + ".enable", session=s)
    b.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1600, "deviceScaleFactor": 1,
                                                  "mobile": False}, session=s)
    b.events.clear()
    b.send("Page.navigate", {"url": "file://" + os.path.abspath(path)}, session=s)
    b.wait_event("Page.loadEventFired")
    probe = json.loads(b.send("Runtime.evaluate", {"expression": DOM_PROBE, "returnByValue": True},
                              session=s)["result"]["value"])
    toggles = b.send("Runtime.evaluate", {"expression": TOGGLE, "returnByValue": True}, session=s)["result"]
    shot = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png"}, session=s)["data"])
    time.sleep(0.2)  # late console messages
    while select.select([b.r], [], [], 0)[0] or b"\0" in b.buf:
        b.events.append(b.receive(1))
    for e in b.events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            problems.append("exception: %s" % p["exceptionDetails"].get("text"))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            problems.append("console %s: %s" % (p["type"], [a.get("value") for a in p.get("args", [])]))
        elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            problems.append("log %s: %s" % (p["entry"]["level"], p["entry"]["text"]))
    charts = probe["charts"]
    if len(charts) < min_charts:
        problems.append("%d charts, expected at least %d" % (len(charts), min_charts))
    for c in charts:
        if c["width"] <= 0 or not (c["points"] and c["markers"] or c["bars"] or c["cells"]):
            problems.append("chart %s drew nothing: %s" % (c["id"], c))
    if probe["resources"]:
        problems.append("network requests: %s" % probe["resources"])
    if toggles.get("value") is not True:
        problems.append("the legend does not hide and show a run: %s" % toggles)
    w, h, ch, px = png_pixels(shot)
    pixels = [px[i:i + 3] for i in range(0, len(px), ch * 7)]  # every 7th pixel
    inked = sum(1 for p in pixels if p != b"\xff\xff\xff") / len(pixels)
    colors = len(set(pixels))
    if inked < 0.03 or colors < 16:
        problems.append("screenshot looks blank: %.1f%% non-white, %d colours" % (100 * inked, colors))
    if screenshot:
        open(screenshot, "wb").write(shot)
    b.send("Target.closeTarget", {"targetId": target})
    summary = "%s: %d charts (%s), %d runs, %d images, screenshot %dx%d %.0f%% inked" % (
        path, len(charts), ", ".join("%s %d" % (c["id"], c["points"] + c["bars"] + c["cells"]) for c in charts),
        probe["runs"], probe["images"], w, h, 100 * inked)
    return problems, summary, probe


def main(argv):
    screenshot, min_charts, pages = None, 1, []
    it = iter(argv)
    for a in it:
        if a == "--screenshot": screenshot = next(it)
        elif a == "--charts": min_charts = int(next(it))
        else: pages.append(a)
    binary = next((p for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] if os.access(p, os.X_OK)), None)
    if not binary:
        print("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
        return 77
    try:
        b = Browser(binary)
        b.send("Browser.getVersion", timeout=60)
    except Exception as e:
        print("chromium does not start: %s" % e)
        return 77
    failed = 0
    try:
        for i, page in enumerate(pages):
            problems, summary, probe = check_page(b, page, screenshot if i == 0 else None, min_charts)
            print(summary)
            print(json.dumps(probe["charts"]))
            for p in problems:
                print("  problem: " + p)
            failed += bool(problems)
    finally:
        b.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
