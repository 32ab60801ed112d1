# Install taskmaster: `make install` (PREFIX=/usr/local), or into a staging root with
# `make install DESTDIR=/tmp/stage PREFIX=/usr`. PROFILE=debug installs a debug build;
# NO_BUILD=1 installs what is already built. The man pages of the binaries are generated from
# their command lines (--generate-docs); the shell completions are the files in completions/.
PREFIX ?= /usr/local
DESTDIR ?=
PROFILE ?= release
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHDIR ?= $(PREFIX)/share/zsh/site-functions
FISHDIR ?= $(PREFIX)/share/fish/vendor_completions.d

TARGET := target/$(PROFILE)
GEN := $(TARGET)/generated
CARGO_FLAGS_release := --release
CARGO_FLAGS_debug :=

.PHONY: all build docs install uninstall
all: build

build:
	cargo build --locked $(CARGO_FLAGS_$(PROFILE)) --bin taskmasterd --bin taskmasterctl

docs: $(if $(NO_BUILD),,build)
	rm -rf $(GEN)
	$(TARGET)/taskmasterd --generate-docs $(GEN)
	$(TARGET)/taskmasterctl --generate-docs $(GEN)

install: docs
	install -Dm755 $(TARGET)/taskmasterd $(DESTDIR)$(BINDIR)/taskmasterd
	install -Dm755 $(TARGET)/taskmasterctl $(DESTDIR)$(BINDIR)/taskmasterctl
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/|$(BINDIR)/|g; s|/etc/taskmaster/|$(SYSCONFDIR)/taskmaster/|g' systemd/taskmasterd.service > $(DESTDIR)$(UNITDIR)/taskmasterd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/taskmasterd.service
	install -Dm644 systemd/taskmaster.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/taskmaster.conf
	install -Dm644 systemd/taskmaster.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/taskmaster.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/taskmaster/taskmaster.yaml || \
		install -Dm644 examples/etc-taskmaster.yaml $(DESTDIR)$(SYSCONFDIR)/taskmaster/taskmaster.yaml
	install -Dm644 $(GEN)/man/taskmasterd.8 $(DESTDIR)$(MANDIR)/man8/taskmasterd.8
	install -Dm644 $(GEN)/man/taskmasterctl.1 $(DESTDIR)$(MANDIR)/man1/taskmasterctl.1
	install -Dm644 docs/man/taskmaster.yaml.5 $(DESTDIR)$(MANDIR)/man5/taskmaster.yaml.5
	install -Dm644 completions/taskmasterd.bash $(DESTDIR)$(BASHDIR)/taskmasterd
	install -Dm644 completions/taskmasterctl.bash $(DESTDIR)$(BASHDIR)/taskmasterctl
	install -Dm644 completions/_taskmasterd $(DESTDIR)$(ZSHDIR)/_taskmasterd
	install -Dm644 completions/_taskmasterctl $(DESTDIR)$(ZSHDIR)/_taskmasterctl
	install -Dm644 completions/taskmasterd.fish $(DESTDIR)$(FISHDIR)/taskmasterd.fish
	install -Dm644 completions/taskmasterctl.fish $(DESTDIR)$(FISHDIR)/taskmasterctl.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/taskmasterd $(DESTDIR)$(BINDIR)/taskmasterctl \
		$(DESTDIR)$(UNITDIR)/taskmasterd.service $(DESTDIR)$(SYSUSERSDIR)/taskmaster.conf \
		$(DESTDIR)$(TMPFILESDIR)/taskmaster.conf $(DESTDIR)$(MANDIR)/man8/taskmasterd.8 \
		$(DESTDIR)$(MANDIR)/man1/taskmasterctl.1 $(DESTDIR)$(MANDIR)/man5/taskmaster.yaml.5 \
		$(DESTDIR)$(BASHDIR)/taskmasterd $(DESTDIR)$(BASHDIR)/taskmasterctl \
		$(DESTDIR)$(ZSHDIR)/_taskmasterd $(DESTDIR)$(ZSHDIR)/_taskmasterctl \
		$(DESTDIR)$(FISHDIR)/taskmasterd.fish $(DESTDIR)$(FISHDIR)/taskmasterctl.fish
