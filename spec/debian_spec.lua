-- A real userland: a Debian 12 root made by debootstrap (spec/debian-root,
-- kept in /var/cache/lbox, or $LBOX_CACHE, between runs and clones), imported as an image
-- as a user would, then used as root and as a user: an interactive shell,
-- dpkg and apt queries (offline), useradd, su, setuid programs.
local helper = require "helper"
local core = require "lbox.core"

local IMAGE = "lbox-spec-debian12"
local CACHE = os.getenv("LBOX_CACHE") or "/var/cache/lbox"

-- #userland: on this host only, not in make test-v2's emulated guest (Makefile)
describe("a Debian 12 root #userland", function()
  local before
  setup(function()
    local made = helper.exec({ helper.root .. "/spec/debian-root", CACHE .. "/debian12.tar" }, { timeout = 1200 })
    assert.are.equal(0, made.code, "spec/debian-root: " .. made.err)
    helper.lbox_run { "image", "rm", IMAGE } -- from a run that was killed
    local imported = helper.lbox_run { "image", "import", CACHE .. "/debian12.tar", IMAGE }
    assert.are.equal(0, imported.code, imported.err)
  end)
  teardown(function()
    assert.are.equal(0, helper.lbox_run({ "image", "rm", IMAGE }).code)
  end)
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("runs an interactive shell with job control and Ctrl-C", function()
    local term = helper.start_pty({ helper.lbox, "run", "-it", IMAGE, "bash" }, 30, 100)
    local function expect(pattern) assert.is_true(helper.expect(term, pattern), term.output) end
    expect("# $")
    core.write(term.master, "echo $((6 * 7)) $(stty size) $(tty)\n")
    expect("42 30 100 /dev/console")
    core.write(term.master, "sleep 100\n")
    helper.sleep(0.3)
    core.write(term.master, "\3")
    expect("%^C[^\n]*\n[^\n]*# $")
    core.write(term.master, "sleep 101 &\n")
    core.write(term.master, "jobs; kill %1; wait %1; echo status=$?\n")
    expect("%[1%]%+ +Running +sleep 101 &.*status=143")
    core.write(term.master, "exit 3\n")
    assert.are.equal(3, helper.finish_pty(term))
  end)

  it("answers dpkg and apt queries offline, as root and as a user", function()
    local query = "dpkg -l bash coreutils | tail -2 | cut -c1-3; dpkg -s apt | grep ^Status; "
      .. "apt-cache policy apt | sed -n 2p; dpkg-query -W -f='${Version}\\n' base-files"
    local root = helper.lbox_run { "run", "--network", "none", IMAGE, "sh", "-c", query .. "; apt-get check" }
    assert.are.equal(0, root.code, root.err)
    assert.matches("^ii \nii \nStatus: install ok installed\n  Installed: [%d.]+\n12[%w.+]*\n", root.out)
    assert.matches("Reading package lists", root.out)
    local user = helper.lbox_run { "run", "--network", "none", "-u", "nobody", IMAGE, "sh", "-c", query .. "; apt-get check" }
    assert.are.equal(100, user.code, user.err)
    assert.matches("^ii \nii \nStatus: install ok installed\n  Installed: [%d.]+\n12[%w.+]*\n", user.out)
    assert.matches("are you root%?", user.err)
  end)

  it("adds a user, and su and setuid programs work, as root and as that user", function()
    -- passwd -S reads /etc/shadow only when its setuid bit works: not where
    -- lbox itself runs with no_new_privs (under bubblewrap, as CI's fresh
    -- root is), which no container can shed; it then shows passwd's "P"
    local setuid_works = helper.read_file("/proc/self/status"):match("NoNewPrivs:%s*(%d)") == "0"
    local locked = setuid_works and "L" or "P"
    local r = helper.lbox_run { "run", IMAGE, "sh", "-c", [[
      useradd -m -s /bin/bash alice && grep ^alice: /etc/passwd | cut -d: -f1,3,6,7
      su alice -c 'id -un; echo $HOME; touch ~/f && stat -c "%U %a" ~/f; passwd -S | cut -d" " -f1,2'
      su - alice -c 'pwd; echo x > /dev/null && echo null-ok; ls /root 2>&1'
      su alice -c 'su -c true root < /dev/null' 2>&1; echo "su-to-root=$?"
    ]] }
    assert.are.equal(0, r.code, r.err)
    -- su ran setuid and asked for root's password, which it could not read
    assert.are.equal("alice:1000:/home/alice:/bin/bash\nalice\n/home/alice\nalice 644\nalice " .. locked .. "\n"
      .. "/home/alice\nnull-ok\nls: cannot open directory '/root': Permission denied\n"
      .. "Password: su: Authentication failure\nsu-to-root=1\n", r.out)
    -- -u with a name from the image's own /etc/passwd, and a setuid program as that user
    -- and a new pty of the container's devpts, as docker gives it
    local user = helper.lbox_run { "run", "-u", "nobody", IMAGE, "sh", "-c",
      "id -un; passwd -S | cut -d' ' -f1,2; script -qc 'tty; stat -c \"%U %G %a\" $(tty)' /dev/null" }
    assert.are.same({ 0, "nobody\nnobody " .. locked .. "\n/dev/pts/0\r\nnobody tty 620\r\n" }, { user.code, user.out }, user.err)
  end)
end)
