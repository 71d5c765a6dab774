-- The Debian package: `make deb` builds it, and apt installs it, with its
-- dependencies, into a throwaway copy of this machine's root (an overlay
-- over /, in a mount namespace of the spec's own: the host's /usr is never
-- touched), where the installed lbox runs a container, has its manual and
-- completion, and apt removes it without a trace.
local helper = require "helper"

-- Run `script` (sh) as root of a throwaway overlay over /, with /dev,
-- /proc, /sys and an empty store; $1 is the package, as /tmp/lbox.deb.
local function in_throwaway_root(deb, script)
  return helper.exec({ "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-euc", [[
    scratch=/tmp # a tmpfs over it, in this mount namespace only
    mount -t tmpfs lbox-spec-package "$scratch"
    mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
    root=$scratch/root
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    for dir in tmp var/lib/lbox; do mkdir -p "$root/$dir" && mount -t tmpfs tmpfs "$root/$dir"; done
    cp "$0" "$root/tmp/lbox.deb" # (the host's /tmp is hidden: $0 is in the checkout)
    exec chroot "$root" /usr/bin/env -u LBOX_STORE /bin/sh -euc "$1"
  ]], deb, script }, { timeout = 300 })
end

describe("the Debian package", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("builds, installs with apt, runs, and removes cleanly", function()
    local built = helper.exec({ "/usr/bin/make", "-C", helper.root, "--no-print-directory", "deb" }, { timeout = 120 })
    assert.are.equal(0, built.code, built.err)
    local deb = helper.root .. "/" .. assert(built.out:match("(lbox_[^\n]+%.deb)\n$"), built.out)
    local version = helper.lbox_run({ "--version" }).out
    assert.matches("^lbox %d+%.%d+%.%d+\n$", version)

    local r = in_throwaway_root(deb, [[
      export DEBIAN_FRONTEND=noninteractive
      # man-db's trigger would re-index every manual page: seconds, minutes under emulation
      echo 'man-db man-db/auto-update boolean false' | debconf-set-selections
      start=$(date +%s)
      apt-get install -y --no-install-recommends /tmp/lbox.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
      echo "apt install: $(($(date +%s) - start)) s" >&2
      echo "status: $(dpkg-query -W -f '${db:Status-Status}' lbox)"
      cd /tmp
      lbox --version
      lbox run -h packaged sh -c 'echo "in $(hostname)"; exit 3' || echo "exit $?"
      lbox run --help | head -n 1
      for f in man1/lbox.1 man1/lbox-run.1 man1/lbox-image.1 man7/lbox-api.7; do
        test -s /usr/share/man/$f.gz && echo "manual: $f"
      done
      grep -q '^complete -F _lbox lbox$' /usr/share/bash-completion/completions/lbox && echo "completion"
      apt-get remove -y lbox >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
      dpkg -s lbox >/dev/null 2>&1 && echo "after remove: dpkg still knows lbox" || echo "after remove: gone"
      for path in /usr/bin/lbox /usr/share/lbox /usr/share/man/man1/lbox.1.gz \
                  /usr/share/bash-completion/completions/lbox /usr/share/doc/lbox; do
        test ! -e $path || echo "left behind: $path"
      done
    ]])
    assert.are.equal(0, r.code, r.out .. r.err)
    assert.are.equal(table.concat({
      "status: installed",
      version:gsub("\n$", ""),
      "in packaged",
      "exit 3",
      "usage: lbox run [OPTIONS] [IMAGE] [COMMAND [ARG...]]",
      "manual: man1/lbox.1", "manual: man1/lbox-run.1", "manual: man1/lbox-image.1", "manual: man7/lbox-api.7",
      "completion",
      "after remove: gone",
    }, "\n") .. "\n", r.out, r.err)
  end)
end)
