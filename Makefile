# lbox: a container runtime with a C core and Lua behaviour.
PREFIX ?= /usr/local
CC ?= cc
LUA ?= lua5.4
# one source for the version: what `lbox --version` and require("lbox").version say
VERSION := $(shell sed -n 's/^lbox.version = "\(.*\)"$$/\1/p' lua/lbox/init.lua)
PKGS = lua5.4 libcgroup libseccomp libmnl
CFLAGS ?= -O2 -g
# expanded when used, so that `make deps all` works on a machine without pkg-config yet;
# libnftables is loaded on first use (core/nft.c): its headers only
CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -fPIC $$(pkg-config --cflags $(PKGS) libnftables)
LDLIBS = $$(pkg-config --libs $(PKGS))

CORE_SRC = core/core.c core/ns.c core/mount.c core/proc.c core/signal.c \
           core/fd.c core/tty.c core/cgroup.c core/net.c core/nft.c core/nftset.c core/port.c core/seccomp.c core/bpf.c \
           core/sock.c core/clock.c
CORE_OBJ = $(CORE_SRC:core/%.c=build/%.o)

BUSTED = $(LUA) /usr/bin/busted

LUA_SRC = $(wildcard lua/lbox/*.lua)
LUA_BYTECODE = $(LUA_SRC:%=build/%)

.PHONY: all deps deps-bench install uninstall test test-v2 check lint bench deb clean debian-root
all: lbox build/lbox/core.so $(LUA_BYTECODE) build/doc/stamp

# The man pages and bash completion, made by lbox from the tables --help prints.
build/doc/stamp: lbox build-aux/manpages.lua lua/API.md $(LUA_SRC) $(wildcard scripts/*.lua)
	rm -rf build/doc
	./lbox build-aux/manpages.lua build/doc
	touch $@

# Bytecode copies, loaded instead of the sources when newer (see core/main.c).
build/lua/%.lua: lua/%.lua
	@mkdir -p $(@D)
	luac5.4 -o $@ $<

build/%.o: core/%.c core/core.h | build
	$(CC) $(CFLAGS) -c -o $@ $<

build:
	mkdir -p build/lbox

lbox: build/main.o $(CORE_OBJ)
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The same core as a module for plain lua5.4 (and busted).
build/lbox/core.so: $(CORE_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $$(pkg-config --libs libcgroup libseccomp libmnl)

# The distribution packages listed in vendor/ (root, Debian): everything
# to build and to pass `make check`; `deps-bench` adds the runtimes compared.
deps:
	vendor/install-packages vendor/build.txt vendor/test.txt vendor/deb.txt vendor/v2vm.txt
deps-bench:
	vendor/install-packages vendor/bench.txt

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/lbox/lua/lbox \
	  $(DESTDIR)$(PREFIX)/share/lbox/build/lua/lbox $(DESTDIR)$(PREFIX)/share/lbox/scripts/examples
	install -m 755 lbox $(DESTDIR)$(PREFIX)/bin/lbox
	install -m 755 lbox-oci $(DESTDIR)$(PREFIX)/bin/lbox-oci
	install -p -m 644 lua/lbox/*.lua $(DESTDIR)$(PREFIX)/share/lbox/lua/lbox/
	install -p -m 644 build/lua/lbox/*.lua $(DESTDIR)$(PREFIX)/share/lbox/build/lua/lbox/
	install -m 644 scripts/*.lua $(DESTDIR)$(PREFIX)/share/lbox/scripts/
	install -m 644 scripts/examples/*.lua $(DESTDIR)$(PREFIX)/share/lbox/scripts/examples/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 644 build/doc/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 build/doc/man7/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 build/doc/completion/lbox $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lbox

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/lbox $(DESTDIR)$(PREFIX)/bin/lbox-oci $(DESTDIR)$(PREFIX)/share/lbox \
	  $(DESTDIR)$(PREFIX)/share/man/man1/lbox.1 $(DESTDIR)$(PREFIX)/share/man/man1/lbox-*.1 \
	  $(DESTDIR)$(PREFIX)/share/man/man7/lbox-api.7 $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lbox

# A Debian package of `make install PREFIX=/usr`, by dpkg-deb (build-aux/mkdeb).
deb: all
	build-aux/mkdeb $(VERSION)

# The specs on this host; in a pure cgroup v2 guest; both, with one summary.
# This host has no swap: its suite leaves out the swap spec (the guest has one).
# The specs use a store of their own, never the user's containers and images.
# The specs' store, one per checkout, outside it: a container in a user
# namespace reaches its layer through the store's path as an unprivileged
# id, and a checkout under /root (0700) is closed to it.
SPEC_STORE ?= /var/tmp/lbox-spec-store$(subst /,-,$(CURDIR))

test: all
	@echo "make test: the #swap spec runs in make test-v2, which has a swap device"
	LBOX_STORE=$(SPEC_STORE) $(BUSTED) --exclude-tags=swap spec; status=$$?; \
	  LBOX_STORE=$(SPEC_STORE) ./lbox spec/teardown.lua; exit $$status

# The Debian 12 root spec/debian_spec.lua imports, made by debootstrap
# from Debian's archive once and kept for every clone of this machine (the
# spec makes it too when missing; its packages stay in apt's cache).
LBOX_CACHE ?= /var/cache/lbox
debian-root:
	spec/debian-root $(LBOX_CACHE)/debian12.tar

# The guest's root is an overlay, which overlayfs will not take as an upper
# layer: the store goes on a tmpfs there. The #userland spec (a Debian root,
# 180 MB to import and nothing cgroup-specific) runs on the host only: the
# guest emulates its CPU (minutes to import it) and may have no network to
# make it with. So do #podman and #containerd (Go binaries under
# emulation; lbox oci itself runs there in spec/oci_spec.lua).
test-v2: all
	spec/v2vm/run-in-v2vm.sh -t 3600 -r -e LBOX_STORE=/tmp/lbox-store $(CURDIR) \
	  'spec/v2vm/add-swap && spec/v2vm/add-network-modules && $(BUSTED) --exclude-tags=userland,podman,containerd spec'

check: all
	spec/run-suites

lint:
	luacheck lua scripts spec build-aux
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability core

bench: all deps-bench
	./lbox scripts/bench.lua
	./lbox scripts/bench_pull.lua

clean:
	rm -rf build lbox lbox_*.deb
