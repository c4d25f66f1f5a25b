# koordinator: `make demo` runs the seed Job locally, `make test` runs every test.

TARGET       := x86_64-unknown-linux-musl
TARGET_ARM64 := aarch64-unknown-linux-musl
BIN          := target/$(TARGET)/release/koordinator
BIN_ARM64    := target/$(TARGET_ARM64)/release/koordinator
CARGO        ?= cargo
APT_INSTALL  := DEBIAN_FRONTEND=noninteractive apt-get install -y -q

VERSION      := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE        ?= koordinator

.PHONY: all static static-nightly static-arm64 test lint bench demo image release deps deps-arm64 deps-bench clean fuzz soak

all: static

# --- toolchain -------------------------------------------------------------

# ring compiles C: the musl build needs musl-gcc (Debian: musl-tools).
deps:
	@command -v musl-gcc >/dev/null || { apt-get update -q && $(APT_INSTALL) musl-tools; }
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

deps-arm64:
	@command -v aarch64-linux-gnu-gcc >/dev/null || { apt-get update -q && $(APT_INSTALL) gcc-aarch64-linux-gnu; }
	@command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || { apt-get update -q && $(APT_INSTALL) qemu-user; }
	@rustup target list --installed | grep -qx $(TARGET_ARM64) || rustup target add $(TARGET_ARM64)

deps-bench:
	@for p in tini dumb-init catatonit; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	 [ -z "$$missing" ] || { apt-get update -q && $(APT_INSTALL) $$missing; }

# --- builds ------------------------------------------------------------------

static: deps
	$(CARGO) build --release --locked --target $(TARGET) --bin koordinator
	@ls -l $(BIN)

# Optional, not the default: the nightly toolchain rebuilds std for size and
# panics abort without a message (koordinator never panics). About 1.08 MB
# instead of 1.45 MB (BENCHMARKS.md); no less memory at run time.
BIN_NIGHTLY := target/nightly/$(TARGET)/release/koordinator
static-nightly: deps
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	rustup component add rust-src --toolchain nightly
	rustup target add $(TARGET) --toolchain nightly
	RUSTFLAGS="-C relocation-model=static -Zunstable-options -Cpanic=immediate-abort" \
	  $(CARGO) +nightly build --release --locked --target $(TARGET) --bin koordinator \
	  -Z build-std=std,panic_abort --target-dir target/nightly
	@ls -l $(BIN_NIGHTLY)

static-arm64: deps-arm64
	$(CARGO) build --release --locked --target $(TARGET_ARM64) --bin koordinator
	@ls -l $(BIN_ARM64)

# --- checks ------------------------------------------------------------------

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Unit tests, then the integration tests against the static binary. Tests that
# need root (PID namespaces, mounts, chroot) say so; CI runs them as root.
test: static static-arm64
	KOORDINATOR_BIN=$(CURDIR)/$(BIN) KOORDINATOR_BIN_ARM64=$(CURDIR)/$(BIN_ARM64) \
	  $(CARGO) test --workspace --locked

# Fuzz every parser and the coordinator, FUZZ_SECONDS each (nightly
# toolchain and cargo-fuzz, installed if missing). Not part of `make test`.
# A crash fails the run; its input is kept in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= spec cli watch_event coordinator state_record http_response
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@mkdir -p fuzz/logs
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && cp -n seeds/$$t/* corpus/$$t/ 2>/dev/null; \
	  cargo +nightly fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=2048 >logs/$$t.log 2>&1 \
	    || { tail -40 logs/$$t.log; exit 1; }; \
	  echo "$$t: $$(grep -E '^Done' logs/$$t.log) $$(grep -E 'DONE' logs/$$t.log | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+')"; \
	done

# Many koordinators against the fake API server under random faults, for
# SOAK_DURATION; then the signal storm. `make test` runs a short one.
SOAK_DURATION ?= 10m
SOAK_PODS ?= 200
soak: static
	$(CARGO) build -q --release --locked -p koordinator-integration --bin soak
	KOORDINATOR_BIN=$(CURDIR)/$(BIN) target/release/soak --pods $(SOAK_PODS) --duration $(SOAK_DURATION)

# The seed Job from the README, run locally by podsim: no cluster needed.
demo: static
	$(CARGO) build -q --release --locked -p koordinator-integration --bin podsim
	target/release/podsim --koordinator $(BIN) examples/job-demo.yaml

bench: static deps-bench
	bash bench/run.sh $(BIN)
	bash bench/podsim.sh $(BIN)

# Both static binaries with their SHA-256 sums, in dist/.
release: static static-arm64
	mkdir -p dist
	cp $(BIN) dist/koordinator-$(VERSION)-x86_64-linux-musl
	cp $(BIN_ARM64) dist/koordinator-$(VERSION)-aarch64-linux-musl
	cd dist && sha256sum koordinator-$(VERSION)-* > SHA256SUMS && cat SHA256SUMS

# The FROM scratch image for amd64 and arm64 (needs a Docker engine with buildx).
image:
	docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

clean:
	$(CARGO) clean
