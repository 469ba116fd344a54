// The CUDA backend: the nanoGPT GPT-2 on one GPU, fp32, tf32 (fp32 storage, TF32 matmuls),
// bf16 mixed precision, or fp8 (bf16, with the blocks' linear layers on fp8 tensor cores:
// backend/cuda_fp8.h).
//
// Memory (all from one CudaAllocator, by category):
//   parameters   fp32 master weights (ParamLayout order) + the bf16 copy the matmuls read (bf16)
//   gradients    fp32, same layout; every kernel and matmul ACCUMULATES into it
//   optimizer    AdamW m and v (fp32) + one decay bit per 64-float chunk
//   activations  everything forward keeps for backward, sized once for (max_batch, max_seq),
//                plus the backward's gradient buffers
//   attention    what the attention implementation keeps per layer + its shared scratch
//   workspace    cuBLASLt workspace (32 MiB; 4 MiB inference-only), reduction partials, the batch, per-position losses
//
// One stream; the host waits only where a value comes back (loss, grad norm, logits,
// whole-buffer copies).
#include <cmath>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "attention/cuda_attention.h"
#include "backend/cuda_backend.h"
#include "backend/cuda_data_parallel.h"
#include "backend/cuda_fp8.h"
#include "backend/cuda_fp8_lm_head.h"
#include "backend/cuda_graph.h"
#include "backend/cuda_matmul.h"
#include "backend/cuda_memory.h"
#include "backend/cuda_model_view.h"
#include "backend/cuda_op_timer.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "core/precision.h"
#include "kernels/document_ids.h"
#include "kernels/kernels.h"
#include "model/dropout_sites.h"

namespace attn {

namespace {

using bf16 = __nv_bfloat16;
namespace site = dropout_site;

// What forward keeps per layer (x_l = the layer's input residual, x_{l+1} its output). With
// fp8 linears, ln1, ln2 and fch_gelu hold their fp8 transposes instead (see keeps_input_t; ln1's
// second half holds the attention projection's: input_t_slot).
template <typename T>
struct LayerActs {
  T* ln1;                    // (N, C)   ln_1(x_l)
  float *ln1_mean, *ln1_rstd;  // (N)
  T* qkv;                    // (N, QKV) c_attn output
  void* att_saved;           // what attention keeps (naive: P)
  T* atty;                   // (N, C)   attention output (heads concatenated)
  T* res_mid;                // (N, C)   x_l + drop(c_proj(atty))
  T* ln2;                    // (N, C)   ln_2(res_mid)
  float *ln2_mean, *ln2_rstd;
  T* fch;                    // (N, 4C)  c_fc output (GELU input)
  T* fch_gelu;               // (N, 4C)  gelu(fch)
  T* res_out;                // (N, C)   x_{l+1} = res_mid + drop(mlp.c_proj(fch_gelu))
};

// RAII for streams, events and page-locked host buffers (also when the constructor throws).
template <typename H, cudaError_t (*Create)(H*, unsigned int), unsigned int kFlags, cudaError_t (*Destroy)(H)>
class CudaHandle {
 public:
  CudaHandle() { CUDA_CHECK(Create(&h_, kFlags)); }
  ~CudaHandle() { Destroy(h_); }
  CudaHandle(const CudaHandle&) = delete;
  CudaHandle& operator=(const CudaHandle&) = delete;
  H get() const { return h_; }

 private:
  H h_ = nullptr;
};
using Stream = CudaHandle<cudaStream_t, cudaStreamCreateWithFlags, cudaStreamNonBlocking, cudaStreamDestroy>;
using Event = CudaHandle<cudaEvent_t, cudaEventCreateWithFlags, cudaEventDisableTiming, cudaEventDestroy>;

template <typename U>
class Pinned {
 public:
  Pinned() = default;
  ~Pinned() { if (p_) cudaFreeHost(p_); }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  U* allocate(size_t n) {
    CUDA_CHECK(cudaMallocHost(&p_, std::max<size_t>(n, 1) * sizeof(U)));
    return p_;
  }

 private:
  U* p_ = nullptr;
};

template <typename T>
class CudaBackend final : public Backend {
 public:
  // tf32: device.precision = "tf32" (dt is F32): the matmuls on TF32 tensor cores.
  // fp8: device.precision = "fp8" (dt is BF16): the blocks' linear layers in fp8.
  CudaBackend(const GPTConfig& model, const BackendOptions& opts, DType dt, bool tf32, bool fp8 = false)
      : cfg_(validated(model)), layout_(cfg_), opts_(opts), dt_(dt) {
    maxB_ = opts.max_batch > 0 ? opts.max_batch : 1;
    maxT_ = opts.max_seq > 0 ? opts.max_seq : cfg_.block_size;
    ATTN_CHECK(maxT_ <= cfg_.block_size, "max_seq {} exceeds model.block_size {}", maxT_, cfg_.block_size);
    AttentionUse use;
    use.dropout = cfg_.attn_dropout, use.n_head = cfg_.n_head, use.n_kv_head = cfg_.n_kv_head;
    use.head_dim = cfg_.head_dim();
    use.tf32 = tf32;
    attention_ = make_cuda_attention(opts.attention, dt_, use);
    allocate_parameters();
    allocate_activations();
    allocate_workspace();
    // fp32 is the parity mode: GELU in our exact kernel rather than cuBLASLt's epilogue
    // (measured ~1e-6 relative off the tanh formula); bf16 fuses everything. tf32 keeps
    // fp32's epilogues: only the matmuls' operand rounding differs from fp32.
    matmul_ = std::make_unique<CudaMatmul>(
        dt_, dt_ == DType::BF16 ? CudaMatmul::Epilogues::All : CudaMatmul::Epilogues::NoGelu, lt_workspace_, stream_,
        lt_workspace_bytes(), tf32, opts.matmul_autotune);
    if (fp8) enable_fp8();
  }

  ~CudaBackend() override { cudaStreamSynchronize(stream_); }  // the rest: members, in reverse order

  std::string name() const override { return "cuda"; }
  const ParamLayout& layout() const override { return layout_; }

  // ---- whole-buffer transfers ------------------------------------------------------------
  void set_params(const float* host) override {
    if (!params_) return set_params_bf16_only(host);
    CUDA_CHECK(cudaMemcpyAsync(params_, host, total_bytes(), cudaMemcpyHostToDevice, stream_));
    master_sharded_ = false;
    refresh_param_copy();
    sync();
  }
  void get_params(float* host) const override {
    if (!params_) return get_params_bf16_only(host);
    if (master_sharded_) dp_->gather_master(params_);  // collective: every rank calls get_params
    master_sharded_ = false;
    download(host, params_);
  }
  void get_grads(float* host) const override {
    require_training("get_grads");
    const_cast<CudaBackend*>(this)->zero_pending_grads();  // (a deferred zero_grad is part of the state)
    download(host, grads_);
  }
  void set_optimizer_state(const float* m, const float* v) override {
    require_training("set_optimizer_state");
    if (dp_ && dp_->zero1()) return dp_->set_moments(m, v);
    CUDA_CHECK(cudaMemcpyAsync(m_, m, total_bytes(), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(v_, v, total_bytes(), cudaMemcpyHostToDevice, stream_));
    sync();
  }
  void get_optimizer_state(float* m, float* v) const override {
    require_training("get_optimizer_state");
    if (dp_ && dp_->zero1()) return dp_->get_moments(m, v, /*scratch=*/grads_);  // grads are consumed by now
    download(m, m_);
    download(v, v_);
  }

  std::vector<float> precision_state() const override { return fp8_ ? fp8_->state() : std::vector<float>{}; }
  void set_precision_state(const std::vector<float>& s) override {
    if (fp8_ && !s.empty()) fp8_->set_state(s);
  }

  // Zeroing is deferred: the next backward writes every gradient instead of adding to it
  // (add_grads_, set by lm_head_and_classifier), which saves a pass over all gradients and the bias-gradient
  // additions. Anything that reads the gradients before that backward zeroes them first. fp8's
  // linears add into their gradients, so with fp8 the buffer is zeroed now.
  void zero_grad() override {
    require_training("zero_grad");
    grads_zero_pending_ = true;
    if (fp8_) zero_pending_grads();
  }
  void zero_pending_grads() {
    if (!grads_zero_pending_) return;
    grads_zero_pending_ = false;
    timed(pass_op(OpCategory::Other, "zero_grad", total_bytes()),
          [&] { CUDA_CHECK(cudaMemsetAsync(grads_, 0, total_bytes(), stream_)); });
  }

  // ---- the training step -------------------------------------------------------------------
  float forward_backward(const Batch& batch, float grad_scale, const StepContext& ctx) override {
    require_training("forward_backward");
    const int count = upload_batch(batch, /*with_targets=*/true, /*with_buckets=*/true);
    forward(batch.B, batch.T, &ctx);
    lm_head_and_classifier(batch.B * batch.T, loss_scale(grad_scale, count), /*write_grad=*/true);
    download_losses(batch.B * batch.T);  // async; read after backward is queued
    backward(batch.B, batch.T, ctx);
    return mean_loss(batch.B * batch.T, count);
  }

  float forward_loss(const Batch& batch) override {
    const int count = upload_batch(batch, /*with_targets=*/true, /*with_buckets=*/false);
    forward(batch.B, batch.T, nullptr);
    lm_head_and_classifier(batch.B * batch.T, 0.0f, /*write_grad=*/false);
    download_losses(batch.B * batch.T);
    return mean_loss(batch.B * batch.T, count);
  }

  void last_logits(const int32_t* tokens, int B, int seq, float* out) override {
    upload_batch(Batch{tokens, nullptr, B, seq}, /*with_targets=*/false, /*with_buckets=*/false);
    forward(B, seq, nullptr);
    // the LM head on the last position of each row only: those rows of ln_f's output, gathered
    const size_t row_bytes = static_cast<size_t>(cfg_.n_embd) * sizeof(T);
    CUDA_CHECK(cudaMemcpy2DAsync(tmp_, row_bytes, lnf_ + static_cast<size_t>(seq - 1) * cfg_.n_embd, seq * row_bytes,
                                 row_bytes, B, cudaMemcpyDeviceToDevice, stream_));
    matmul_->forward(acts_logits_, tmp_, P(layout_.wte()), nullptr, B, cfg_.n_embd, cfg_.padded_vocab_size);
    kern::gather_last_logits(last_logits_, acts_logits_, B, 1, cfg_.vocab_size, cfg_.padded_vocab_size, stream_);
    CUDA_CHECK(cudaMemcpyAsync(out, last_logits_, sizeof(float) * B * cfg_.vocab_size, cudaMemcpyDeviceToHost,
                               stream_));
    sync();
  }

  float grad_norm() override {
    require_training("grad_norm");
    zero_pending_grads();
    if (dp_ && dp_->zero1()) return static_cast<float>(std::sqrt(dp_->grad_norm_squared(grads_, norm_partials_, norm_out_)));
    enqueue_grad_norm_squared();
    double sq = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&sq, norm_out_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    sync();
    return static_cast<float>(std::sqrt(sq));
  }

  void adamw_step(const AdamWConfig& c, float lr, float grad_multiplier, int64_t t) override {
    require_training("adamw_step");
    ATTN_CHECK(t >= 1, "adamw_step: step count t = {} (1-based)", t);
    zero_pending_grads();
    if (dp_ && dp_->zero1()) {
      if (dt_ == DType::F32) return dp_->adamw_step(params_, nullptr, grads_, c, lr, grad_multiplier, t);
      dp_->adamw_step(params_, reinterpret_cast<bf16*>(cparams_), grads_, c, lr, grad_multiplier, t);
      master_sharded_ = true;  // only this rank's shard of params_ is current
      return;
    }
    adamw(c, adamw_scalars(c, lr, grad_multiplier, t), nullptr);
  }

  MemoryReport memory() const override { return mem_.report(); }
  void synchronize() override { sync(); }

  // Data parallelism lives in cuda_data_parallel.cu; backward calls stage_done() below.
  void enable_data_parallel(Communicator& comm, bool zero1, size_t bucket_bytes) override {
    require_training("enable_data_parallel");
    dp_ = std::make_unique<CudaDataParallel>(comm, zero1, bucket_bytes, layout_, mem_, stream_, timer_);
    if (zero1) mem_.release(m_), mem_.release(v_), m_ = v_ = nullptr;  // the shards live in dp_
  }

  std::unique_ptr<Generator> make_generator(const GeneratorOptions& opt) override {
    sync();  // the generator's work follows whatever this stream has queued
    return make_cuda_generator(
        CudaModelView{&cfg_, &layout_, dt_, cparams_, matmul_.get(), stream_, &mem_, opts_.attention}, opt);
  }

  // ---- the whole step, captured once into a CUDA graph and replayed -------------------------
  // Per micro-batch a slot (tokens, targets, buckets, losses, loss scale, dropout keys) and one
  // block of step scalars (lr, bias corrections, clip threshold), all written by the host before
  // each launch: the graph's kernels read them from there (core/device_value.h), so a replay
  // computes what the separate calls compute, bit for bit. The first step of a shape runs the
  // same calls uncaptured (cuBLASLt picks its algorithms there), the second captures them.
  TrainStepResult train_step(const TrainStep& step) override {
    if (!graph_refusal().empty()) return Backend::train_step(step);
    const GraphStepKey key = graph_step_key(step);
    if (!(key == graph_key_)) prepare_graph_step(key);
    const std::vector<int> counted = stage_graph_step(step);
    if (graph_.captured()) {
      graph_.launch(stream_);
    } else if (graph_warm_) {
      graph_.capture(stream_, [&] { enqueue_graph_step(step); });
      graph_.launch(stream_);
    } else {
      enqueue_graph_step(step);
      graph_warm_ = true;
    }
    return finish_graph_step(counted);
  }
  std::string train_step_mode() const override {
    const std::string why = graph_refusal();
    return why.empty() ? "graph" : "calls (" + why + ")";
  }

  void set_profiling(bool on) override {
    timer_.set_enabled(on);
    profiling_ = on;
  }
  StepProfile profile() const override { return timer_.profile(); }
  void reset_profile() override { timer_.reset(); }

 private:
  // ---- the captured step's parts (train_step above) -----------------------------------------
  // What a capture depends on besides device memory: a different key needs a new capture.
  struct GraphStepKey {
    int B = 0, seq = 0, micro = 0;
    uint64_t train_mask = 0;  // micro-steps with dropout on (StepContext::train)
    float beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
    bool operator==(const GraphStepKey&) const = default;
  };
  // Step scalars in device memory: AdamW's (grad_mult written by the graph from the norm) and
  // the clip threshold; per micro-batch the loss scale and one dropout key per site follow.
  struct GraphStepScalars {
    kern::AdamWScalars adamw;
    double grad_clip;
  };
  // The embedding backward's token buckets of one micro-batch, built on the host by a host node
  // of the captured step (see enqueue_graph_step) from its staged tokens into its pinned slot.
  struct BucketJob {
    const int32_t* tokens = nullptr;  // pinned: the micro-batch's staged inputs
    int32_t* out = nullptr;           // pinned: its bucket region, uploaded after the job
    int N = 0, vocab = 0, pad = 0;
    std::vector<int32_t> tmp;
    bool failed = false;  // (a host node cannot throw: checked after the step)
    // the bytes it writes: build_token_buckets' layout, pad buckets (2 pad + 1 ints) and N positions
    size_t bytes() const { return (2 * static_cast<size_t>(pad) + 1 + N) * sizeof(int32_t); }
    static void CUDART_CB run(void* self) {
      auto* j = static_cast<BucketJob*>(self);
      try {
        kern::build_token_buckets(j->tokens, j->N, j->vocab, j->tmp, j->pad);
        std::copy(j->tmp.begin(), j->tmp.end(), j->out);
      } catch (...) {
        j->failed = true;
      }
    }
  };
  // Device slots and their page-locked mirror: [ints per micro | scalars | dloss | keys] is
  // uploaded before each launch, [losses per micro] downloaded after.
  struct GraphStepBuffers {
    size_t ints_per_micro = 0, scalars = 0, dloss = 0, keys = 0, losses = 0, upload_bytes = 0, bytes = 0;
    char* dev = nullptr;
    char* host = nullptr;
    Pinned<char> host_holder;
    std::vector<BucketJob> bucket_jobs;  // one per micro-batch, addresses fixed while the graph lives
    Stream bucket_stream;                // the side branch that builds and uploads them
    Event bucket_fork, buckets_ready;
  };

  std::string graph_refusal() const {
    if (!opts_.cuda_graph) return "device.cuda_graph = false";
    if (profiling_) return "profiling: every call timed";
    if (dp_) return "data-parallel";
    return "";
  }

  GraphStepKey graph_step_key(const TrainStep& step) const {
    require_training("train_step");
    ATTN_CHECK(step.t >= 1, "train_step: step count t = {} (1-based)", step.t);
    const size_t micro = step.micro_batches.size();
    ATTN_CHECK(micro >= 1 && micro <= 64 && step.contexts.size() == micro,
               "train_step: {} micro-batches and {} contexts (one each, 1 to 64 in a captured step)", micro,
               step.contexts.size());
    GraphStepKey k{step.micro_batches[0].B, step.micro_batches[0].T, static_cast<int>(micro), 0,
                   step.adamw.beta1, step.adamw.beta2, step.adamw.eps, step.adamw.weight_decay};
    for (size_t m = 0; m < micro; ++m) {
      ATTN_CHECK(step.micro_batches[m].B == k.B && step.micro_batches[m].T == k.seq,
                 "train_step: micro-batch {} is ({}, {}), the first ({}, {})", m, step.micro_batches[m].B,
                 step.micro_batches[m].T, k.B, k.seq);
      if (step.contexts[m].train) k.train_mask |= uint64_t{1} << m;
    }
    return k;
  }

  // A new shape: the old graph goes, the slots are sized for it, the next step runs uncaptured.
  void prepare_graph_step(const GraphStepKey& key) {
    sync();
    graph_.reset();
    graph_warm_ = false;
    if (graph_bufs_ && graph_bufs_->dev) mem_.release(graph_bufs_->dev);
    graph_bufs_.reset();
    graph_key_ = GraphStepKey{};
    auto b = std::make_unique<GraphStepBuffers>();
    const size_t M = key.micro, N = static_cast<size_t>(key.B) * key.seq;
    b->ints_per_micro = batch_ints_capacity();
    ArenaPlan plan;
    plan.add(M * b->ints_per_micro * sizeof(int32_t));
    b->scalars = plan.add(sizeof(GraphStepScalars));
    b->dloss = plan.add(M * sizeof(float));
    b->keys = plan.add(M * dropout_sites() * sizeof(uint64_t));
    b->upload_bytes = b->losses = plan.add(M * N * sizeof(float));
    b->bytes = plan.bytes();
    b->dev = static_cast<char*>(mem_.allocate(b->bytes, MemCategory::Workspace));
    b->host = b->host_holder.allocate(b->bytes);
    b->bucket_jobs.resize(M);
    for (size_t m = 0; m < M; ++m) {
      int32_t* slot = reinterpret_cast<int32_t*>(b->host) + m * b->ints_per_micro;
      BucketJob& job = b->bucket_jobs[m];
      job.tokens = slot, job.out = slot + 2 * N;
      job.N = static_cast<int>(N), job.vocab = cfg_.vocab_size, job.pad = static_cast<int>(std::min<size_t>(N, job.vocab));
    }
    graph_bufs_ = std::move(b);
    graph_key_ = key;
  }

  // Host: each micro-batch checked and written to its slot, the scalars and keys beside it,
  // one upload. Returns the counted targets of each micro-batch.
  std::vector<int> stage_graph_step(const TrainStep& step) {
    GraphStepBuffers& g = *graph_bufs_;
    const int M = graph_key_.micro, N = graph_key_.B * graph_key_.seq;
    auto* scalars = reinterpret_cast<GraphStepScalars*>(g.host + g.scalars);
    auto* dloss = reinterpret_cast<float*>(g.host + g.dloss);
    auto* keys = reinterpret_cast<uint64_t*>(g.host + g.keys);
    std::vector<int> counted(M);
    for (int m = 0; m < M; ++m) {
      int32_t* slot = reinterpret_cast<int32_t*>(g.host) + m * g.ints_per_micro;
      // (the buckets: built by the step itself, on the host beside the GPU's work)
      counted[m] = stage_batch(step.micro_batches[m], /*with_targets=*/true, /*with_buckets=*/false, slot, 0).counted;
      dloss[m] = loss_scale(step.grad_scale, counted[m]);
      const StepContext& c = step.contexts[m];
      for (int site = 0; site < dropout_sites(); ++site)
        keys[m * dropout_sites() + site] = site::key(c.seed, c.step, c.micro_step, static_cast<uint64_t>(site));
    }
    scalars->adamw = adamw_scalars(step.adamw, step.lr, 1.0f, step.t);  // grad_mult: from the norm, on the device
    scalars->grad_clip = step.grad_clip;
    CUDA_CHECK(cudaMemcpyAsync(g.dev, g.host, g.upload_bytes, cudaMemcpyHostToDevice, stream_));
    return counted;
  }

  // The device part of the step: what the graph holds.
  void enqueue_graph_step(const TrainStep& step) {
    GraphStepBuffers& g = *graph_bufs_;
    const int B = graph_key_.B, T_ = graph_key_.seq, N = B * T_;
    auto* scalars = reinterpret_cast<GraphStepScalars*>(g.dev + g.scalars);
    zero_grad();
    struct Restore {  // the eager calls' own batch buffers again, also when a launch throws
      CudaBackend* be;
      float* losses;
      ~Restore() { be->batch_ints_ = be->dev_ints_, be->losses_ = losses, be->dropout_keys_at_ = nullptr; }
    } restore{this, losses_};
    // The embedding backward's token buckets (a counting sort of the tokens, ~0.1-0.4 ms of CPU)
    // are built by host nodes on a side branch and uploaded there, so the host work runs while the
    // GPU runs the forward; the first backward waits for them (the embedding's is the last kernel).
    CUDA_CHECK(cudaEventRecord(g.bucket_fork.get(), stream_));
    CUDA_CHECK(cudaStreamWaitEvent(g.bucket_stream.get(), g.bucket_fork.get()));
    for (BucketJob& job : g.bucket_jobs) {
      CUDA_CHECK(cudaLaunchHostFunc(g.bucket_stream.get(), &BucketJob::run, &job));
      const size_t offset = reinterpret_cast<const char*>(job.out) - g.host;
      CUDA_CHECK(cudaMemcpyAsync(g.dev + offset, job.out, job.bytes(), cudaMemcpyHostToDevice, g.bucket_stream.get()));
    }
    CUDA_CHECK(cudaEventRecord(g.buckets_ready.get(), g.bucket_stream.get()));
    for (int m = 0; m < graph_key_.micro; ++m) {
      batch_ints_ = reinterpret_cast<int32_t*>(g.dev) + m * g.ints_per_micro;
      losses_ = reinterpret_cast<float*>(g.dev + g.losses) + static_cast<size_t>(m) * N;
      dropout_keys_at_ = reinterpret_cast<const uint64_t*>(g.dev + g.keys) + m * dropout_sites();
      cur_N_ = N, num_buckets_ = g.bucket_jobs[m].pad;  // padded: one bucket launch fits every batch
      count_tokens(B, T_);
      forward(B, T_, &step.contexts[m]);
      lm_head_and_classifier(N, DeviceValue<float>(0.0f, reinterpret_cast<const float*>(g.dev + g.dloss) + m), true);
      if (m == 0) CUDA_CHECK(cudaStreamWaitEvent(stream_, g.buckets_ready.get()));
      backward(B, T_, step.contexts[m]);
    }
    enqueue_grad_norm_squared();
    kern::grad_clip_factor(&scalars->adamw.grad_mult, norm_out_, &scalars->grad_clip, stream_);
    adamw(step.adamw, kern::AdamWScalars{}, &scalars->adamw);  // (device addresses, not read here)
  }

  // After the launch: the losses and the norm back to the host, one wait.
  TrainStepResult finish_graph_step(const std::vector<int>& counted) {
    GraphStepBuffers& g = *graph_bufs_;
    const int N = graph_key_.B * graph_key_.seq;
    CUDA_CHECK(cudaMemcpyAsync(g.host + g.losses, g.dev + g.losses, g.bytes - g.losses, cudaMemcpyDeviceToHost,
                               stream_));
    double sq = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&sq, norm_out_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    sync();
    for (const BucketJob& job : g.bucket_jobs)
      ATTN_CHECK(!job.failed, "train_step: building the embedding's token buckets failed (out of host memory?)");
    TrainStepResult r;
    for (int m = 0; m < graph_key_.micro; ++m)
      r.losses.push_back(mean_of(reinterpret_cast<const float*>(g.host + g.losses) + static_cast<size_t>(m) * N, N,
                                 counted[m]));
    r.norm = static_cast<float>(std::sqrt(sq));
    return r;
  }

  // The squared gradient norm into norm_out_ (device), not read back: grad_norm() and the
  // captured step share it.
  void enqueue_grad_norm_squared() {
    timed(pass_op(OpCategory::Optimizer, "grad norm", total_bytes()),
          [&] { kern::global_norm_squared(norm_out_, norm_partials_, grads_, layout_.total(), stream_); });
  }

  int dropout_sites() const { return 1 + 3 * cfg_.n_layer; }  // model/dropout_sites.h

  // ---- forward: x = drop(wte[tok] + wpe); blocks; ln_f (the LM head: lm_head_and_classifier) ---
  // The inputs of the QKV, fc and fc-proj linears are written where linear_input() says: their
  // layer slot, or with fp8 a scratch buffer, the slot then receiving the fp8 transpose; or, where
  // ln_casts_input, the layernorm writes the fp8 x and x^T itself (layernorm_for_linear).
  void forward(int B, int T_, const StepContext* ctx) {
    const int N = B * T_, C = cfg_.n_embd, QKV = cfg_.qkv_dim();
    const AttentionShape shape = attention_shape(B, T_);
    timed(pass_op(OpCategory::Other, "encoder fwd", 3.0 * N * C * sizeof(T)), [&] {
      kern::encoder_forward(encoded_, tokens_dev(), P(layout_.wte()), P(layout_.wpe()), B, T_, C,
                            dropout(ctx, cfg_.dropout, site::kEmbedding), stream_);
    });
    for (int l = 0; l < cfg_.n_layer; ++l) {
      const LayerParams& lp = layout_.layer(l);
      LayerActs<T>& a = layers_[l];
      const T* x = layer_input(l);
      // attention branch: res_mid = x + drop(c_proj(attn(ln_1(x)))); ln_1 of a later layer was
      // computed with the previous layer's residual add (residual_layernorm_forward)
      if (l == 0)
        layernorm_for_linear(l, kQkv, a.ln1, QKV, nullptr, a.ln1_mean, a.ln1_rstd, x, nullptr, lp.ln1_w, lp.ln1_b, N,
                             DropoutState{});
      linear_forward("qkv fwd", l, kQkv, a.qkv, a.ln1, lp.qkv_w, lp.qkv_b, N, C, QKV);
      timed(attention_op(OpCategory::AttentionFwd, shape, 1.0), [&] {
        attention_->forward(a.qkv, a.atty, a.att_saved, att_scratch_, shape,
                            dropout(ctx, cfg_.attn_dropout, site::attention_probs(l)), stream_);
      });
      linear_forward("attproj fwd", l, kAttProj, tmp_, a.atty, lp.attproj_w, lp.attproj_b, N, C, C);
      // MLP branch: res_out = res_mid + drop(c_proj(gelu(c_fc(ln_2(res_mid))))); the residual
      // add and the layernorm that reads it are one pass over the row
      layernorm_for_linear(l, kFc, a.ln2, 4 * C, a.res_mid, a.ln2_mean, a.ln2_rstd, x, tmp_, lp.ln2_w, lp.ln2_b, N,
                           dropout(ctx, cfg_.dropout, site::attention_branch(l)));
      if (keeps_input_t(kFcProj, N, 4 * C, C)) {
        // fp8: the fc's bias and the GELU in the fc-proj's input cast, gelu(h + b) (cuda_fp8.h; on
        // the H200 the fc's fp8 matmul ran ~10% slower with cuBLASLt's bias epilogue than without)
        linear_forward("fc fwd", l, kFc, a.fch, a.ln2, lp.fc_w, kNoBias, N, C, 4 * C);
        linear_forward("fcproj fwd", l, kFcProj, tmp_, a.fch_gelu, lp.fcproj_w, lp.fcproj_b, N, 4 * C, C,
                       /*pre_gelu=*/nullptr, /*gelu_of=*/a.fch, /*gelu_bias=*/P(lp.fc_b));
      } else {
        linear_forward("fc+gelu fwd", l, kFc, a.fch_gelu, a.ln2, lp.fc_w, lp.fc_b, N, C, 4 * C, /*pre_gelu=*/a.fch);
        linear_forward("fcproj fwd", l, kFcProj, tmp_, a.fch_gelu, lp.fcproj_w, lp.fcproj_b, N, 4 * C, C);
      }
      // res_out, fused with the next layernorm: ln_1 of layer l + 1, or ln_f after the last layer
      const DropoutState mlp_drop = dropout(ctx, cfg_.dropout, site::mlp_branch(l));
      if (l + 1 < cfg_.n_layer) {
        LayerActs<T>& next = layers_[l + 1];
        const LayerParams& np = layout_.layer(l + 1);
        layernorm_for_linear(l + 1, kQkv, next.ln1, QKV, a.res_out, next.ln1_mean, next.ln1_rstd, a.res_mid, tmp_,
                             np.ln1_w, np.ln1_b, N, mlp_drop);
      } else {
        timed(pass_op(OpCategory::Norm, "residual+layernorm fwd", 4.0 * N * C * sizeof(T)), [&] {
          kern::residual_layernorm_forward(a.res_out, lnf_, lnf_mean_, lnf_rstd_, a.res_mid, tmp_,
                                           P(layout_.lnf_w()), P(layout_.lnf_b()), N, C, mlp_drop, stream_);
        });
      }
    }
  }

  // The LM head and the classifier, kClassifierChunks blocks of rows at a time, so that the logits
  // buffer holds one block (GPT-2 124M, B=16, T=1024: 0.8 GB instead of 1.6). Per block:
  //   logits = ln_f(x) wte^T;  losses per position (softmax + cross-entropy);
  //   with write_grad: the logits become dlogits (scaled by dloss), then the LM head's backward,
  //   dx = dlogits wte (rows of dbuf_) and dwte (+)= dlogits^T ln_f(x).
  // A training call starts the backward's gradient writing (add_grads_, see backward()).
  void lm_head_and_classifier(int N, DeviceValue<float> dloss, bool write_grad) {
    const int C = cfg_.n_embd, Vp = cfg_.padded_vocab_size;
    if (write_grad) {
      // The first backward after zero_grad writes each gradient where the others add: every
      // parameter's first contribution overwrites (wte: the LM head's first block, before the rest).
      add_grads_ = !grads_zero_pending_;
      grads_zero_pending_ = false;
    }
    const int block = classifier_rows(N);
    const bool fp8 = lm_head_fp8_ && CudaFp8LmHead::supports(N, Vp, C);  // (blocks: multiples of 16 rows)
    if (fp8) lm_head_fp8_->cast_operands(as_bf16(lnf_), N, write_grad);
    for (int r0 = 0; r0 < N; r0 += block) {
      const int rows = std::min(block, N - r0);
      const T* x = lnf_ + static_cast<size_t>(r0) * C;
      if (fp8) {
        lm_head_fp8_->forward(as_bf16(acts_logits_), r0, rows, "lm_head fwd");
      } else {
        timed(matmul_op("lm_head fwd", rows, C, Vp, OpCategory::Classifier),
              [&] { matmul_->forward(acts_logits_, x, P(layout_.wte()), nullptr, rows, C, Vp); });
      }
      const kern::Fp8Dlogits dlogits8 = fp8 && write_grad ? lm_head_fp8_->dlogits_target() : kern::Fp8Dlogits{};
      const double pass_bytes = rows * static_cast<double>(Vp) * (2.0 * sizeof(T) + (dlogits8.q ? 1.0 : 0.0));
      timed(pass_op(OpCategory::Classifier, "softmax+xent fwd/bwd", pass_bytes), [&] {
        kern::classifier_forward_backward(acts_logits_, losses_ + r0, targets_dev() + r0, rows, cfg_.vocab_size, Vp,
                                          dloss, write_grad, stream_, dlogits8);
      });
      if (!write_grad) continue;
      if (fp8) {
        lm_head_fp8_->dgrad(as_bf16(dbuf_ + static_cast<size_t>(r0) * C), rows, "lm_head dgrad");
      } else {
        timed(matmul_op("lm_head dgrad", rows, C, Vp, OpCategory::Classifier), [&] {
          matmul_->backward_input(dbuf_ + static_cast<size_t>(r0) * C, acts_logits_, P(layout_.wte()), rows, C, Vp);
        });
      }
      timed(matmul_op("lm_head wgrad", rows, C, Vp, OpCategory::Classifier), [&] {
        matmul_->backward_weight(G(layout_.wte()), nullptr, acts_logits_, x, rows, C, Vp, reduce_scratch_,
                                 add_grads_ || r0 > 0);
      });
    }
  }
  // (fp8 objects exist only where T is bf16: enable_fp8)
  static bf16* as_bf16(T* p) { return reinterpret_cast<bf16*>(p); }
  // The rows of a classifier block: half the batch's, or with the fp8 LM head those of the fewest
  // equal blocks whose logits fit the buffer beside its fp8 copies (enable_fp8_lm_head).
  static constexpr int kClassifierChunks = 2;
  int classifier_rows(int N) const {
    return lm_head_fp8_ ? lm_head_rows_ : std::max(1, (N + kClassifierChunks - 1) / kClassifierChunks);
  }

  // ---- backward: from d ln_f(x) (in dbuf_, from lm_head_and_classifier) to every parameter
  // gradient; adds into them, or writes them when add_grads_ is false (see lm_head_and_classifier)
  void backward(int B, int T_, const StepContext& ctx) {
    const int N = B * T_, C = cfg_.n_embd, QKV = cfg_.qkv_dim();
    const size_t NC = static_cast<size_t>(N) * C;
    const AttentionShape shape = attention_shape(B, T_);
    timed(pass_op(OpCategory::Norm, "layernorm bwd", 3.0 * NC * sizeof(T)), [&] {  // dres written, not added
      kern::layernorm_backward(dres_, G(layout_.lnf_w()), G(layout_.lnf_b()), reduce_scratch_, dbuf_,
                               layer_input(cfg_.n_layer), P(layout_.lnf_w()), lnf_mean_, lnf_rstd_, N, C,
                               /*add_dinp=*/false, add_grads_, stream_);
    });
    stage_done(cfg_.n_layer, ctx);
    for (int l = cfg_.n_layer - 1; l >= 0; --l) {
      const LayerParams& lp = layout_.layer(l);
      const LayerActs<T>& a = layers_[l];
      // MLP branch (dres = d res_out)
      const T* dbranch = dropout_backward(dres_, NC, dropout(&ctx, cfg_.dropout, site::mlp_branch(l)));
      // fp8: the dGELU moves from the fc-proj dgrad into the cast of the fc's dy (dfch_ stays
      // the gradient of the GELU's output; the GELU's input is fch + the fc's bias, as forward)
      const bool fuse_dgelu = fp8_call(N, C, 4 * C);
      linear_backward("fcproj wgrad", "fcproj dgrad+dgelu", l, kFcProj, dfch_, lp.fcproj_w, lp.fcproj_b, dbranch,
                      a.fch_gelu, N, 4 * C, C, /*pre_gelu=*/fuse_dgelu ? nullptr : a.fch);
      linear_backward("fc wgrad", "fc dgrad", l, kFc, dbuf_, lp.fc_w, lp.fc_b, dfch_, a.ln2, N, C, 4 * C,
                      /*pre_gelu=*/nullptr, /*dout_gelu_input=*/fuse_dgelu ? a.fch : nullptr,
                      /*gelu_bias=*/fuse_dgelu ? P(lp.fc_b) : nullptr);
      timed(pass_op(OpCategory::Norm, "layernorm bwd", 4.0 * NC * sizeof(T)), [&] {
        kern::layernorm_backward(dres_, G(lp.ln2_w), G(lp.ln2_b), reduce_scratch_, dbuf_, a.res_mid, P(lp.ln2_w),
                                 a.ln2_mean, a.ln2_rstd, N, C, /*add_dinp=*/true, add_grads_, stream_);
      });
      // attention branch (dres = d res_mid)
      dbranch = dropout_backward(dres_, NC, dropout(&ctx, cfg_.dropout, site::attention_branch(l)));
      linear_backward("attproj wgrad", "attproj dgrad", l, kAttProj, dbuf_, lp.attproj_w, lp.attproj_b, dbranch, a.atty,
                      N, C, C);
      timed(attention_op(OpCategory::AttentionBwd, shape, 2.5), [&] {
        attention_->backward(a.qkv, a.atty, dbuf_, a.att_saved, dqkv_, att_scratch_, shape,
                             dropout(&ctx, cfg_.attn_dropout, site::attention_probs(l)), stream_);
      });
      linear_backward("qkv wgrad", "qkv dgrad", l, kQkv, dbuf_, lp.qkv_w, lp.qkv_b, dqkv_, a.ln1, N, C, QKV);
      timed(pass_op(OpCategory::Norm, "layernorm bwd", 4.0 * NC * sizeof(T)), [&] {
        kern::layernorm_backward(dres_, G(lp.ln1_w), G(lp.ln1_b), reduce_scratch_, dbuf_, layer_input(l), P(lp.ln1_w),
                                 a.ln1_mean, a.ln1_rstd, N, C, /*add_dinp=*/true, add_grads_, stream_);
      });
      stage_done(l, ctx);
    }
    timed(pass_op(OpCategory::Other, "encoder bwd", NC * (sizeof(T) + 2.0 * sizeof(float))), [&] {
      // wpe's rows past T_ get nothing from this batch: written as zeros here, first backward
      if (!add_grads_) {
        const size_t wpe_bytes = layout_.get(layout_.wpe()).numel * sizeof(float);
        CUDA_CHECK(cudaMemsetAsync(G(layout_.wpe()), 0, wpe_bytes, stream_));
      }
      kern::encoder_backward(G(layout_.wte()), G(layout_.wpe()), dres_, buckets_dev(B * T_), num_buckets_, B, T_, C,
                             dropout(&ctx, cfg_.dropout, site::kEmbedding), stream_);
    });
    if (fp8_) fp8_->update_scales();  // delayed scaling: the next micro-batch casts with these
    stage_done(-1, ctx);
  }

  // ---- the blocks' linear layers: bf16/fp32 matmuls, or fp8 (backend/cuda_fp8.h) ------------
  enum LinearKind { kQkv = 0, kAttProj = 1, kFc = 2, kFcProj = 3, kLinearsPerLayer = 4 };
  // fp8 for this call: device.precision = "fp8" and a shape cuBLASLt's fp8 matmuls take (rows
  // not a multiple of 16, e.g. an odd-length prompt, run in bf16 on the same operands).
  bool fp8_call(int N, int IC, int OC) const { return fp8_ && CudaFp8Linears::supports(N, IC, OC); }
  // An fp8 linear whose bf16 input the backward needs only for the wgrad's fp8 x^T (QKV: ln_1,
  // fc: ln_2, fc-proj: gelu(fch); not the attention projection: the attention backward reads
  // atty, and its x^T waits elsewhere: input_t_slot) keeps that x^T instead: its forward casts x once into x (its own operand) and x^T, the
  // latter into the input's layer slot (a bf16 buffer: x^T fills half of it), and the backward
  // uses it where it would cast x again. The bf16 input itself lives only from its producer to
  // this forward, in a buffer of the layer backward, dead during the forward (linear_input), or
  // (fc-proj) is never stored: its cast computes gelu(fch) from the fc's output.
  // Forward and backward ask this one function, with the same shape, whether x^T was kept.
  bool keeps_input_t(LinearKind kind, int N, int IC, int OC) const {
    return kind != kAttProj && fp8_call(N, IC, OC);
  }
  // Where linear `kind` of `layer` keeps its input's fp8 x^T from the forward to the backward, or
  // null (the backward casts the bf16 input again): where keeps_input_t, its input's layer slot
  // `slot`; the attention projection, whose bf16 input (atty) stays too, in the second half of
  // ln_1's slot, of which QKV's x^T fills the first (N x C bytes of a bf16 N x C buffer: no memory
  // of its own; were QKV to keep more there, the two would overlap). Forward and backward ask this
  // one function, with the same shape.
  void* input_t_slot(int layer, LinearKind kind, T* slot, int N, int IC, int OC) const {
    if (keeps_input_t(kind, N, IC, OC)) return slot;
    const int C = cfg_.n_embd;
    if (kind == kAttProj && fp8_call(N, IC, OC) && IC == C && keeps_input_t(kQkv, N, C, cfg_.qkv_dim()))
      return reinterpret_cast<char*>(layers_[layer].ln1) + static_cast<size_t>(N) * C;
    return nullptr;
  }
  // fp8: whether the layernorm that produces linear `kind`'s input (QKV: ln_1, fc: ln_2) writes
  // the linear's e4m3 x and x^T itself (kern::layernorm_forward_fp8, layernorm_for_linear), the
  // bf16 ln output then never stored (the layernorm backward reads the layernorm's input, mean and
  // rstd, not its output). Where the linear keeps x^T, the kernel takes the shape, and x's scale
  // exists: delayed scaling knows it before the layernorm runs, except at x's first cast (its
  // scale from its own amax: the linear's forward casts that one, from bf16). The layernorm and
  // the linear's forward ask this one function; between them only that forward's cast could
  // change its answer. (Host state: a captured step holds the answers of the uncaptured step
  // before it, which cast every tensor, so it never holds a first cast.)
  bool ln_casts_input(int layer, LinearKind kind, int N, int IC, int OC) const {
    return (kind == kQkv || kind == kFc) && keeps_input_t(kind, N, IC, OC) && kern::layernorm_fp8_supports(N, IC) &&
           fp8_->input_scaled(layer * kLinearsPerLayer + kind);
  }
  // Where the forward writes the bf16 input of linear `kind` (ln_1 of QKV, ln_2 of fc; its layer
  // slot `slot`): the slot, or where it keeps x^T there, dbuf_ (N x C; ln_1 is read by the QKV
  // forward before ln_2 is written, ln_2 by the fc forward before the next ln_1). dbuf_ is dead
  // from the end of one backward to the LM head after the next forward (it first takes the LM
  // head's dgrad); the fp8 scratch lies elsewhere.
  T* linear_input(LinearKind kind, T* slot, int N, int IC, int OC) const {
    return keeps_input_t(kind, N, IC, OC) ? dbuf_ : slot;
  }
  // The layernorm that produces the input of linear `kind` (QKV: ln_1, fc: ln_2) of `layer`, its
  // layer slot `slot`, OC the linear's outputs: ln(x), or with branch ln(res_out = x + drop(branch))
  // (residual_layernorm_forward). It writes bf16 where linear_input() says, or where
  // ln_casts_input the linear's e4m3 x and x^T (into the slot) itself.
  void layernorm_for_linear(int layer, LinearKind kind, T* slot, int OC, T* res_out, float* mean, float* rstd,
                            const T* x, const T* branch, int w, int b, int N, DropoutState drop) {
    const int C = cfg_.n_embd;
    const bool residual = branch != nullptr;
    const double bytes = (residual ? 4.0 : 2.0) * N * C * sizeof(T);
    if constexpr (std::is_same_v<T, bf16>) {
      if (ln_casts_input(layer, kind, N, C, OC)) {
        const kern::Fp8CastTarget out = fp8_->input_target(layer * kLinearsPerLayer + kind, N, slot);
        return timed(pass_op(OpCategory::Norm, residual ? "residual+layernorm+fp8 cast fwd" : "layernorm+fp8 cast fwd",
                             bytes),
                     [&] {
                       if (residual)
                         kern::residual_layernorm_forward_fp8(res_out, out, mean, rstd, x, branch, P(w), P(b), N, C,
                                                              drop, stream_);
                       else
                         kern::layernorm_forward_fp8(out, mean, rstd, x, P(w), P(b), N, C, stream_);
                     });
      }
    }
    T* out = linear_input(kind, slot, N, C, OC);
    timed(pass_op(OpCategory::Norm, residual ? "residual+layernorm fwd" : "layernorm fwd", bytes), [&] {
      if (residual)
        kern::residual_layernorm_forward(res_out, out, mean, rstd, x, branch, P(w), P(b), N, C, drop, stream_);
      else
        kern::layernorm_forward(out, mean, rstd, x, P(w), P(b), N, C, stream_);
    });
  }

  // out (N, OC) = x W^T + b, x = inp (with pre_gelu: pre_gelu = that, out = gelu(pre_gelu)). inp:
  // the input's layer slot; where keeps_input_t, x is read from linear_input(), or with gelu_of
  // (fp8 only) x = gelu(gelu_of), computed in x's cast; fp8: x's transpose is written where
  // input_t_slot says; where ln_casts_input, the layernorm has cast x and x^T already.
  // b: kNoBias, the bias added by the consumer (fp8: gelu_bias of the next linear's input cast).
  static constexpr int kNoBias = -1;
  void linear_forward(const char* name, int layer, LinearKind kind, T* out, T* inp, int w, int b, int N, int IC,
                      int OC, T* pre_gelu = nullptr, const T* gelu_of = nullptr, const T* gelu_bias = nullptr) {
    const T* bias = b == kNoBias ? nullptr : P(b);
    if constexpr (std::is_same_v<T, bf16>) {
      if (fp8_call(N, IC, OC)) {
        ATTN_CHECK(pre_gelu == nullptr, "linear_forward: the fp8 linears take the GELU in their input's cast");
        if (gelu_of == nullptr && ln_casts_input(layer, kind, N, IC, OC))  // x, x^T written by the layernorm
          return fp8_->forward_precast(layer * kLinearsPerLayer + kind, out, bias, N, name);
        return fp8_->forward(layer * kLinearsPerLayer + kind, out, gelu_of ? gelu_of : linear_input(kind, inp, N, IC, OC),
                             bias, N, name, input_t_slot(layer, kind, inp, N, IC, OC), gelu_of != nullptr, gelu_bias);
      }
    }
    ATTN_CHECK(gelu_of == nullptr && gelu_bias == nullptr && bias != nullptr,
               "linear_forward: a GELU in the input's cast, or a bias left to it, is an fp8 path only");
    timed(matmul_op(name, N, IC, OC), [&] { matmul_->forward(out, inp, P(w), bias, N, IC, OC, pre_gelu); });
  }
  // dW += dout^T inp, db += sum dout, then dinp = dout W (times gelu'(pre_gelu) when given).
  // inp: the input's layer slot (fp8: where input_t_slot keeps x^T, only that is read). fp8 only:
  // dout_gelu_input, dout is the gradient of a GELU's output and dout * gelu'(it + gelu_bias) the
  // linear's (fused into the cast of dy; gelu_bias: the bias forward left to the GELU's cast).
  void linear_backward(const char* wgrad_name, const char* dgrad_name, int layer, LinearKind kind, T* dinp, int w, int b,
                       const T* dout, const T* inp, int N, int IC, int OC, const T* pre_gelu = nullptr,
                       const T* dout_gelu_input = nullptr, const T* gelu_bias = nullptr) {
    if constexpr (std::is_same_v<T, bf16>) {
      if (fp8_call(N, IC, OC)) {
        // inp: the bf16 input, or where its x^T was kept, the slot that holds it (input_t_slot)
        const void* x_t = input_t_slot(layer, kind, const_cast<T*>(inp), N, IC, OC);
        const T* x = x_t ? nullptr : inp;
        ATTN_CHECK(pre_gelu == nullptr, "linear_backward: the fp8 linears take the dGELU in dy's cast");
        return fp8_->backward(layer * kLinearsPerLayer + kind, dinp, G(w), G(b), dout, x, N, dout_gelu_input,
                              wgrad_name, dgrad_name, x_t, gelu_bias);
      }
    }
    ATTN_CHECK(dout_gelu_input == nullptr && gelu_bias == nullptr, "linear_backward: a fused dGELU is an fp8 path only");
    timed(matmul_op(wgrad_name, N, IC, OC),
          [&] { matmul_->backward_weight(G(w), G(b), dout, inp, N, IC, OC, reduce_scratch_, add_grads_); });
    timed(matmul_op(dgrad_name, N, IC, OC), [&] { matmul_->backward_input(dinp, dout, P(w), N, IC, OC, pre_gelu); });
  }

  // fp8 state and its scratch: inside the logits buffer beyond the layer backward's buffers
  // when it has room (the fp8 copies, like those buffers, are dead whenever logits are live),
  // else a buffer of its own: never over dbuf_, which carries bf16 inputs of fp8 linears during
  // the forward (linear_input). The weights' fp8 copies are cast the most whole layers at a time
  // that fit there (the whole model at GPT-2 124M and 350M, B=16, T=1024: one launch per forward
  // and one per backward), one layer at a time in a buffer of its own.
  void enable_fp8() {
    if constexpr (!std::is_same_v<T, bf16>) ATTN_CHECK(false, "fp8 linears need bf16 activations");
    const int C = cfg_.n_embd;
    const auto weight = [&](int tensor, int out, int in) {
      return CudaFp8Linears::LinearWeight{reinterpret_cast<const bf16*>(P(tensor)), out, in};
    };
    std::vector<CudaFp8Linears::LinearWeight> weights;
    for (int l = 0; l < cfg_.n_layer; ++l) {  // linear index l * kLinearsPerLayer + LinearKind
      const LayerParams& lp = layout_.layer(l);
      weights.push_back(weight(lp.qkv_w, cfg_.qkv_dim(), C));
      weights.push_back(weight(lp.attproj_w, C, C));
      weights.push_back(weight(lp.fc_w, 4 * C, C));
      weights.push_back(weight(lp.fcproj_w, C, 4 * C));
    }
    fp8_ = std::make_unique<CudaFp8Linears>(weights, maxB_ * maxT_, *matmul_, mem_, timer_, stream_);
    const int most = std::min(cfg_.n_layer, kern::kFp8CastManyMaxJobs / kLinearsPerLayer);
    int layers = most;
    while (layers > 1 && fp8_->scratch_bytes(layers * kLinearsPerLayer) > logits_spare_bytes_) --layers;
    const size_t need = fp8_->scratch_bytes(layers * kLinearsPerLayer);
    fp8_->set_scratch(need <= logits_spare_bytes_ ? logits_spare_ : mem_.allocate(need, MemCategory::Activations),
                      layers * kLinearsPerLayer);
    enable_fp8_lm_head();
  }
  // The LM head in fp8 (cuda_fp8_lm_head.h), when its fp8 copies fit the logits buffer beside a
  // block of bf16 logits of at least 16 rows: then the fewest blocks whose rows (a multiple of
  // 16) do, so the peak stays bf16's (GPT-2 124M and 350M, B=16, T=1024: 4 blocks of 4,096 rows).
  // Its copies are dead, like the logits, outside lm_head_and_classifier.
  void enable_fp8_lm_head() {
    const int C = cfg_.n_embd, Vp = cfg_.padded_vocab_size, N = maxB_ * maxT_;
    if (!CudaFp8LmHead::supports(16, Vp, C) || N < 16) return;
    const auto logits_at = [&](int rows) { return ArenaPlan::aligned(static_cast<size_t>(rows) * Vp * sizeof(T)); };
    int rows = std::min(N, classifier_rows(N)) / 16 * 16;
    while (rows >= 16 && logits_at(rows) + CudaFp8LmHead::scratch_bytes(Vp, C, N, rows) > logits_bytes_) rows -= 16;
    if (rows < 16) return;
    const int blocks = (N + rows - 1) / rows;  // as few blocks as fit, of equal rows (GPT-2: 4 x 4,096)
    rows = ((N + blocks - 1) / blocks + 15) / 16 * 16;
    lm_head_fp8_ = std::make_unique<CudaFp8LmHead>(reinterpret_cast<const bf16*>(P(layout_.wte())), Vp, C, N,
                                                   *matmul_, mem_, timer_, stream_);
    lm_head_fp8_->set_scratch(reinterpret_cast<char*>(acts_logits_) + logits_at(rows), rows);
    lm_head_rows_ = rows;
  }
  // Data-parallel: gradients of this backward stage are queued (buckets.h stages).
  void stage_done(int stage, const StepContext& ctx) {
    if (dp_ && ctx.sync_grads) dp_->backward_stage_done(stage, grads_);
  }

  // Gradient of a dropped branch: dres itself without dropout, else drop(dres) in tmp_.
  const T* dropout_backward(const T* dres, size_t n, DropoutState d) {
    if (d.p <= 0.0f) return dres;
    timed(pass_op(OpCategory::Other, "dropout bwd", 2.0 * n * sizeof(T)), [&] { kern::dropout_apply(tmp_, dres, n, d, stream_); });
    return tmp_;
  }

  DropoutState dropout(const StepContext* ctx, float p, uint64_t s) const {
    if (ctx == nullptr || !ctx->train || p <= 0.0f) return DropoutState{};
    // (a captured step: the key of this micro-step is in device memory, written before each replay)
    return DropoutState{p, site::key(ctx->seed, ctx->step, ctx->micro_step, s),
                        dropout_keys_at_ != nullptr ? dropout_keys_at_ + s : nullptr};
  }

  AttentionShape attention_shape(int B, int T_) const {
    AttentionShape s;
    s.B = B, s.T = T_, s.n_head = cfg_.n_head, s.n_kv_head = cfg_.n_kv_head, s.head_dim = cfg_.head_dim();
    return s;
  }

  const T* layer_input(int l) const { return l == 0 ? encoded_ : layers_[l - 1].res_out; }
  const T* P(int tensor) const { return cparams_ + layout_.get(tensor).offset; }
  float* G(int tensor) { return grads_ + layout_.get(tensor).offset; }

  // ---- the batch: tokens (and targets, and the embedding-backward buckets) to the device ------
  // Returns the number of counted (non -1) targets.
  int upload_batch(const Batch& b, bool with_targets, bool with_buckets) {
    // host_ints_ is pinned; the previous use of it has finished (every public call ends synced).
    const StagedBatch staged = stage_batch(b, with_targets, with_buckets, host_ints_, /*pad_buckets=*/0);
    timed(OpTag(OpCategory::Other, "batch upload"), [&] {
      CUDA_CHECK(cudaMemcpyAsync(dev_ints_, host_ints_, staged.ints * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    });
    batch_ints_ = dev_ints_, cur_N_ = b.B * b.T;
    count_tokens(b.B, b.T);
    return staged.counted;
  }

  // Host: checks the batch and writes [inputs | targets | buckets] to `dst` (at most
  // batch_ints_capacity() ints); sets num_buckets_ (at least pad_buckets).
  struct StagedBatch {
    size_t ints = 0;  // written
    int counted = 0;  // non -1 targets
  };
  StagedBatch stage_batch(const Batch& b, bool with_targets, bool with_buckets, int32_t* dst, int pad_buckets) {
    ATTN_CHECK(b.B >= 1 && b.B <= maxB_, "batch of {} rows, but the CUDA backend was sized for max_batch = {}", b.B,
               maxB_);
    ATTN_CHECK(b.T >= 1 && b.T <= maxT_, "sequence length {}, but the CUDA backend was sized for max_seq = {}", b.T,
               maxT_);
    const int N = b.B * b.T, V = cfg_.vocab_size;
    for (int i = 0; i < N; ++i)
      ATTN_CHECK(b.inputs[i] >= 0 && b.inputs[i] < V, "token id {} at position {} is outside the vocabulary [0, {})",
                 b.inputs[i], i, V);
    std::copy(b.inputs, b.inputs + N, dst);
    StagedBatch r{static_cast<size_t>(N), 0};
    if (with_targets) {
      ATTN_CHECK(b.targets != nullptr, "batch without targets");
      for (int i = 0; i < N; ++i) {
        ATTN_CHECK(b.targets[i] >= -1 && b.targets[i] < V, "target id {} at position {} is outside [-1, {})",
                   b.targets[i], i, V);
        r.counted += b.targets[i] != -1;
      }
      std::copy(b.targets, b.targets + N, dst + N);
      r.ints = 2 * static_cast<size_t>(N);
    }
    if (with_buckets) {
      num_buckets_ = kern::build_token_buckets(b.inputs, N, V, bucket_tmp_, pad_buckets);
      std::copy(bucket_tmp_.begin(), bucket_tmp_.end(), dst + 2 * static_cast<size_t>(N));
      r.ints = 2 * static_cast<size_t>(N) + bucket_tmp_.size();
    }
    return r;
  }
  // inputs, targets, buckets (<= 3N + 1), the variants' token counts (N each)
  size_t batch_ints_capacity() const {
    const size_t N = static_cast<size_t>(maxB_) * maxT_;
    return (5 + std::max<size_t>(1, counted_tokens(opts_.attention).size())) * N + 1;
  }

  // Device: the variants' token counts (B, T) each (document ids, ...) from the batch's tokens,
  // after its buckets' 3N + 1 ints.
  void count_tokens(int B, int T_) {
    const std::vector<int> separators = counted_tokens(opts_.attention);
    if (separators.empty()) return;
    std::vector<const int32_t*> counts;
    for (size_t k = 0; k < separators.size(); ++k) {
      int32_t* c = batch_ints_ + (5 + k) * static_cast<size_t>(maxB_) * maxT_ + 1;
      timed(OpTag(OpCategory::Other, "token counts"), [&] { kern::document_ids(c, tokens_dev(), B, T_, separators[k], stream_); });
      counts.push_back(c);
    }
    attention_->set_token_counts(counts);
  }
  const int32_t* tokens_dev() const { return batch_ints_; }
  const int32_t* targets_dev() const { return batch_ints_ + cur_N_; }
  const int32_t* buckets_dev(int N) const { return batch_ints_ + 2 * static_cast<size_t>(N); }

  void download_losses(int N) {
    timed(OpTag(OpCategory::Other, "loss download"), [&] {
      CUDA_CHECK(cudaMemcpyAsync(host_floats_, losses_, sizeof(float) * N, cudaMemcpyDeviceToHost, stream_));
    });
  }
  float mean_loss(int N, int count) {
    sync();
    return mean_of(host_floats_, N, count);
  }
  // The mean loss over the counted targets, from the per-position losses (0 where ignored).
  static float mean_of(const float* losses, int N, int count) {
    double s = 0.0;
    for (int i = 0; i < N; ++i) s += losses[i];
    return count > 0 ? static_cast<float>(s / count) : 0.0f;
  }
  // d(grad_scale * mean loss)/d(loss at a counted position)
  static float loss_scale(float grad_scale, int count) {
    return count > 0 ? grad_scale / static_cast<float>(count) : 0.0f;
  }

  // AdamW's step scalars; bc = 1 - beta^t in double, then float.
  static kern::AdamWScalars adamw_scalars(const AdamWConfig& c, float lr, float grad_multiplier, int64_t t) {
    const double bc1 = 1.0 - std::pow(static_cast<double>(c.beta1), static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(static_cast<double>(c.beta2), static_cast<double>(t));
    return kern::AdamWScalars{lr, static_cast<float>(bc1), static_cast<float>(bc2), grad_multiplier};
  }
  // One AdamW update of every parameter; scalars_at: the scalars read from device memory instead.
  void adamw(const AdamWConfig& c, const kern::AdamWScalars& s, const kern::AdamWScalars* scalars_at) {
    // reads param, grad, m, v (fp32); writes param, m, v and the bf16 copy
    const double adamw_bytes = layout_.total() * (16.0 + 12.0 + (dt_ == DType::BF16 ? 2.0 : 0.0));
    timed(pass_op(OpCategory::Optimizer, "adamw", adamw_bytes), [&] {
      kern::adamw_update(params_, grads_, m_, v_, dt_ == DType::BF16 ? reinterpret_cast<bf16*>(cparams_) : nullptr,
                         decay_bits_, layout_.total(), s.lr, c.beta1, c.beta2, s.bc1, s.bc2, c.eps, c.weight_decay,
                         s.grad_mult, stream_, scalars_at);
    });
  }

  void refresh_param_copy() {
    if (dt_ == DType::BF16) kern::cast_f32_to_bf16(reinterpret_cast<bf16*>(cparams_), params_, layout_.total(), stream_);
  }
  void download(float* host, const float* dev) const {
    CUDA_CHECK(cudaMemcpyAsync(host, dev, total_bytes(), cudaMemcpyDeviceToHost, stream_));
    sync();
  }
  // Every event recorded so far has completed after a stream sync: read them now (no extra wait).
  void sync() const {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    timer_.collect(/*wait=*/false);
  }
  // Runs a named call, timed under its category and name while profiling is on.
  template <typename F>
  void timed(const OpTag& op, F&& call) {
    timer_.time(op, std::forward<F>(call));
  }
  // Profile names with their work: a matmul (N, IC) x (IC, OC); a pass over `bytes`; attention
  // (forward 4 B H T^2 D flops, halved when causal; the backward `times` that).
  static OpTag matmul_op(const char* name, int N, int IC, int OC, OpCategory c = OpCategory::Matmul) {
    return OpTag(c, name, 2.0 * N * IC * OC);
  }
  static OpTag pass_op(OpCategory c, const char* name, double bytes) { return OpTag(c, name, 0, bytes); }
  OpTag attention_op(OpCategory c, const AttentionShape& s, double times) const {
    const double fwd = 4.0 * s.B * s.n_head * double(s.T) * s.T * s.head_dim * (opts_.attention.causal ? 0.5 : 1.0);
    return OpTag(c, c == OpCategory::AttentionFwd ? "attention fwd" : "attention bwd", fwd * times);
  }
  size_t total_bytes() const { return layout_.total() * sizeof(float); }

  // ---- setup -----------------------------------------------------------------------------
  static const GPTConfig& validated(const GPTConfig& g) {
    ATTN_CHECK(g.n_layer >= 1 && g.n_head >= 1 && g.n_embd >= 1 && g.block_size >= 1 && g.vocab_size >= 1,
               "model: n_layer, n_head, n_embd, block_size and vocab_size must be positive");
    ATTN_CHECK(g.n_embd % g.n_head == 0, "model.n_embd = {} is not a multiple of model.n_head = {}", g.n_embd,
               g.n_head);
    ATTN_CHECK(g.n_kv_head >= 1 && g.n_head % g.n_kv_head == 0,
               "model.n_kv_head = {} must divide model.n_head = {}", g.n_kv_head, g.n_head);
    ATTN_CHECK(g.padded_vocab_size >= g.vocab_size, "padded_vocab_size {} < vocab_size {}", g.padded_vocab_size,
               g.vocab_size);
    ATTN_CHECK(g.dropout >= 0.0f && g.dropout < 1.0f, "model.dropout = {} must be in [0, 1)", g.dropout);
    ATTN_CHECK(g.attn_dropout >= 0.0f && g.attn_dropout < 1.0f, "model.attn_dropout = {} must be in [0, 1)",
               g.attn_dropout);
    return g;
  }

  void require_training(const char* call) const {
    ATTN_CHECK(!opts_.inference_only, "{} on a backend built for inference only (BackendOptions::inference_only): "
               "it has no gradients or optimizer state", call);
  }

  // Inference-only bf16 keeps no fp32 master: the host rounds to bf16 (round to nearest even,
  // as refresh_param_copy does on the device) and uploads the kernels' copy directly.
  void set_params_bf16_only(const float* host) {
    const size_t n = layout_.total();
    std::vector<bf16> staged(n);
    for (size_t i = 0; i < n; ++i) staged[i] = __float2bfloat16_rn(host[i]);
    CUDA_CHECK(cudaMemcpyAsync(cparams_, staged.data(), n * sizeof(bf16), cudaMemcpyHostToDevice, stream_));
    sync();  // `staged` is pageable and dies here
  }
  void get_params_bf16_only(float* host) const {
    const size_t n = layout_.total();
    std::vector<bf16> staged(n);
    CUDA_CHECK(cudaMemcpyAsync(staged.data(), cparams_, n * sizeof(bf16), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (size_t i = 0; i < n; ++i) host[i] = __bfloat162float(staged[i]);
  }

  void allocate_parameters() {
    const size_t n = layout_.total();
    if (opts_.inference_only) {  // the kernels' copy only: fp32 params_, or bf16 cparams_ with no master
      if (dt_ == DType::F32) {
        params_ = mem_.allocate_n<float>(n, MemCategory::Parameters);
        cparams_ = reinterpret_cast<T*>(params_);
        CUDA_CHECK(cudaMemsetAsync(params_, 0, n * sizeof(float), stream_));
      } else {
        cparams_ = mem_.allocate_n<T>(n, MemCategory::Parameters);
        CUDA_CHECK(cudaMemsetAsync(cparams_, 0, n * sizeof(T), stream_));
      }
      sync();
      return;
    }
    const size_t padded = CudaDataParallel::padded_floats(n);  // ZeRO-1 splits these two evenly
    params_ = mem_.allocate_n<float>(padded, MemCategory::Parameters);
    // (the bf16 copy padded too: ZeRO-1 all-gathers it by shards)
    cparams_ = dt_ == DType::F32 ? reinterpret_cast<T*>(params_) : mem_.allocate_n<T>(padded, MemCategory::Parameters);
    grads_ = mem_.allocate_n<float>(padded, MemCategory::Gradients);
    m_ = mem_.allocate_n<float>(n, MemCategory::Optimizer);
    v_ = mem_.allocate_n<float>(n, MemCategory::Optimizer);
    // One weight-decay bit per 64-float chunk (tensors start on 64-float boundaries).
    const size_t chunks = (n + 63) / 64;
    std::vector<uint32_t> bits((chunks + 31) / 32, 0u);
    for (const ParamTensor& t : layout_.tensors()) {
      if (!t.decay()) continue;
      for (size_t c = t.offset / 64; c < (t.offset + t.numel + 63) / 64; ++c) bits[c / 32] |= 1u << (c % 32);
    }
    decay_bits_ = mem_.allocate_n<uint32_t>(bits.size(), MemCategory::Optimizer);
    // (on stream_: a non-blocking stream does not order itself after the legacy stream)
    CUDA_CHECK(cudaMemcpyAsync(decay_bits_, bits.data(), bits.size() * sizeof(uint32_t), cudaMemcpyHostToDevice,
                               stream_));
    for (float* buf : {params_, grads_}) CUDA_CHECK(cudaMemsetAsync(buf, 0, padded * sizeof(float), stream_));
    if (dt_ == DType::BF16) CUDA_CHECK(cudaMemsetAsync(cparams_, 0, padded * sizeof(T), stream_));
    for (float* buf : {m_, v_}) CUDA_CHECK(cudaMemsetAsync(buf, 0, n * sizeof(float), stream_));
    refresh_param_copy();
    sync();
  }

  void allocate_activations() {
    const size_t N = static_cast<size_t>(maxB_) * maxT_, C = cfg_.n_embd, QKV = cfg_.qkv_dim();
    const size_t Vp = cfg_.padded_vocab_size, L = cfg_.n_layer;
    const size_t nc = N * C * sizeof(T), stat = N * sizeof(float);
    ArenaPlan plan;
    struct Off { size_t ln1, m1, r1, qkv, atty, res_mid, ln2, m2, r2, fch, fch_gelu, res_out; };
    std::vector<Off> off(L);
    const size_t encoded = plan.add(nc);
    for (size_t l = 0; l < L; ++l) {
      Off& o = off[l];
      o.ln1 = plan.add(nc), o.m1 = plan.add(stat), o.r1 = plan.add(stat);
      o.qkv = plan.add(N * QKV * sizeof(T)), o.atty = plan.add(nc), o.res_mid = plan.add(nc);
      o.ln2 = plan.add(nc), o.m2 = plan.add(stat), o.r2 = plan.add(stat);
      o.fch = plan.add(4 * nc), o.fch_gelu = plan.add(4 * nc), o.res_out = plan.add(nc);
    }
    const size_t lnf = plan.add(nc), lnf_m = plan.add(stat), lnf_r = plan.add(stat);
    // one classifier block of rows, or last_logits' maxB_ rows
    const size_t logits_rows = std::max<size_t>(classifier_rows(static_cast<int>(N)), maxB_);
    const size_t logits_bytes = logits_rows * Vp * sizeof(T);
    logits_bytes_ = logits_bytes;
    const size_t logits = plan.add(logits_bytes);
    const size_t tmp = plan.add(nc), dbuf = plan.add(nc), dres = plan.add(nc);
    // The layer backward's buffers (dqkv, dfch, attention scratch) are used only after the LM
    // head's backward has consumed dlogits, and the next forward writes logits only after the
    // last attention call: they live inside the logits buffer when it is big enough (GPT-2: 1.6 GB of
    // logits vs ~0.2 GB), which takes ~0.2 GB off the peak.
    const AttentionShape s = attention_shape(maxB_, maxT_);
    ArenaPlan late;
    const size_t dqkv_in = late.add(N * QKV * sizeof(T)), dfch_in = late.add(4 * nc);
    const size_t scratch_in = late.add(attention_->scratch_bytes(s));
    const bool share_logits = late.bytes() <= logits_bytes;
    const size_t late_base = share_logits ? logits : plan.add(late.bytes());
    const size_t late_end = late.bytes();  // (256-byte aligned, like every ArenaPlan offset)
    char* base = static_cast<char*>(mem_.allocate(plan.bytes(), MemCategory::Activations));
    auto t = [&](size_t o) { return reinterpret_cast<T*>(base + o); };
    auto f = [&](size_t o) { return reinterpret_cast<float*>(base + o); };
    encoded_ = t(encoded);
    layers_.resize(L);
    for (size_t l = 0; l < L; ++l) {
      const Off& o = off[l];
      layers_[l] = LayerActs<T>{t(o.ln1), f(o.m1), f(o.r1), t(o.qkv), nullptr, t(o.atty), t(o.res_mid),
                                t(o.ln2), f(o.m2), f(o.r2), t(o.fch), t(o.fch_gelu), t(o.res_out)};
    }
    lnf_ = t(lnf), lnf_mean_ = f(lnf_m), lnf_rstd_ = f(lnf_r), acts_logits_ = t(logits);
    tmp_ = t(tmp), dbuf_ = t(dbuf), dres_ = t(dres);
    dqkv_ = t(late_base + dqkv_in), dfch_ = t(late_base + dfch_in);
    att_scratch_ = base + late_base + scratch_in;
    if (share_logits && late_end < logits_bytes)
      logits_spare_ = base + logits + late_end, logits_spare_bytes_ = logits_bytes - late_end;

    // attention: per-layer saved state (the scratch lives with the backward buffers above)
    ArenaPlan aplan;
    std::vector<size_t> saved(L);
    for (size_t l = 0; l < L; ++l) saved[l] = aplan.add(attention_->saved_bytes(s));
    char* abase = static_cast<char*>(mem_.allocate(aplan.bytes(), MemCategory::Attention));
    for (size_t l = 0; l < L; ++l) layers_[l].att_saved = abase + saved[l];
  }

  size_t lt_workspace_bytes() const {
    return opts_.inference_only ? CudaMatmul::kInferenceWorkspaceBytes : CudaMatmul::kWorkspaceBytes;
  }

  void allocate_workspace() {
    const int N = maxB_ * maxT_, C = cfg_.n_embd;
    const int widest = std::max({cfg_.qkv_dim(), 4 * C, C});
    const size_t reduce = std::max(kern::layernorm_backward_scratch_floats(N, C),
                                   CudaMatmul::backward_weight_scratch_floats(N, widest));
    const size_t ints = batch_ints_capacity();
    ArenaPlan plan;
    const size_t lt = plan.add(lt_workspace_bytes());
    const size_t red = plan.add(reduce * sizeof(float));
    const size_t parts = plan.add(kern::kNormPartials * sizeof(float));
    const size_t norm = plan.add(sizeof(double));
    const size_t in = plan.add(ints * sizeof(int32_t));
    const size_t loss = plan.add(static_cast<size_t>(N) * sizeof(float));
    const size_t last = plan.add(static_cast<size_t>(maxB_) * cfg_.vocab_size * sizeof(float));
    char* base = static_cast<char*>(mem_.allocate(plan.bytes(), MemCategory::Workspace));
    lt_workspace_ = base + lt;
    reduce_scratch_ = reinterpret_cast<float*>(base + red);
    norm_partials_ = reinterpret_cast<float*>(base + parts);
    norm_out_ = reinterpret_cast<double*>(base + norm);
    dev_ints_ = reinterpret_cast<int32_t*>(base + in);
    batch_ints_ = dev_ints_;
    losses_ = reinterpret_cast<float*>(base + loss);
    last_logits_ = reinterpret_cast<float*>(base + last);
    host_ints_ = host_ints_holder_.allocate(ints);
    host_floats_ = host_floats_holder_.allocate(N);
  }

  GPTConfig cfg_;
  ParamLayout layout_;
  BackendOptions opts_;
  DType dt_;
  int maxB_ = 0, maxT_ = 0;
  CudaAllocator mem_;  // frees every device buffer last
  Stream stream_holder_;
  cudaStream_t stream_ = stream_holder_.get();
  CudaOpTimer timer_{stream_};
  std::unique_ptr<CudaAttention> attention_;
  std::unique_ptr<CudaMatmul> matmul_;
  std::unique_ptr<CudaFp8Linears> fp8_;  // device.precision = "fp8"
  std::unique_ptr<CudaFp8LmHead> lm_head_fp8_;  // and its LM head, where its copies fit
  int lm_head_rows_ = 0;                        // then the rows of a classifier block
  size_t logits_bytes_ = 0;                     // the logits buffer
  char* logits_spare_ = nullptr;         // the logits buffer beyond the layer backward's buffers
  size_t logits_spare_bytes_ = 0;

  // parameters, gradients, optimizer
  float* params_ = nullptr;  // fp32 master
  T* cparams_ = nullptr;     // what the kernels read: params_ (fp32) or its bf16 copy
  mutable bool master_sharded_ = false;  // ZeRO-1 bf16: params_ is current on this rank's shard only
  float* grads_ = nullptr;
  bool grads_zero_pending_ = false;  // zero_grad() was called; the next backward writes (see zero_grad)
  bool add_grads_ = true;            // this backward adds into the gradients (else writes them)
  float *m_ = nullptr, *v_ = nullptr;
  uint32_t* decay_bits_ = nullptr;

  // activations
  T* encoded_ = nullptr;
  std::vector<LayerActs<T>> layers_;
  T* lnf_ = nullptr;
  float *lnf_mean_ = nullptr, *lnf_rstd_ = nullptr;
  T* acts_logits_ = nullptr;  // (rows of one classifier block, Vp): logits, then dlogits in place
  T *tmp_ = nullptr, *dbuf_ = nullptr, *dres_ = nullptr, *dqkv_ = nullptr, *dfch_ = nullptr;
  void* att_scratch_ = nullptr;

  // workspace
  void* lt_workspace_ = nullptr;
  float* reduce_scratch_ = nullptr;
  float* norm_partials_ = nullptr;
  double* norm_out_ = nullptr;
  int32_t* dev_ints_ = nullptr;
  float* losses_ = nullptr;
  float* last_logits_ = nullptr;
  Pinned<int32_t> host_ints_holder_;  // page-locked: asynchronous copies
  Pinned<float> host_floats_holder_;
  int32_t* host_ints_ = nullptr;
  float* host_floats_ = nullptr;
  std::vector<int32_t> bucket_tmp_;
  int num_buckets_ = 0;
  int cur_N_ = 0;
  int32_t* batch_ints_ = nullptr;  // the current batch: dev_ints_, or a captured step's slot
  const uint64_t* dropout_keys_at_ = nullptr;  // a captured step's keys of this micro-step, by site
  bool profiling_ = false;

  // the captured training step (train_step)
  CudaGraph graph_;
  bool graph_warm_ = false;  // its first step ran uncaptured
  GraphStepKey graph_key_;
  std::unique_ptr<GraphStepBuffers> graph_bufs_;
  std::unique_ptr<CudaDataParallel> dp_;  // data-parallel training, when enabled (destroyed first)
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const GPTConfig& model, const BackendOptions& opts) {
  ATTN_CHECK(cuda_device_count() > 0, "device.backend = \"cuda\" but no CUDA device is visible");
  const std::optional<Precision> p = parse_precision(opts.precision);
  ATTN_CHECK(p.has_value(), "device.precision: unknown precision '{}' (expected {})", opts.precision,
             kPrecisionChoices);
  if (activation_dtype(*p) == DType::BF16)
    return std::make_unique<CudaBackend<bf16>>(model, opts, DType::BF16, false, fp8_matmuls(*p));
  return std::make_unique<CudaBackend<float>>(model, opts, DType::F32, tf32_matmuls(*p));
}

}  // namespace attn
