"""The command table: every ``stylestream`` command as (words, config dataclass, run function).

:func:`configkit.flags.build_parser` makes the parser from :data:`GROUPS` and :data:`COMMANDS`;
flags and YAML keys are the config's fields, so nothing here adds an argument by hand.
"""

from __future__ import annotations

from configkit.flags import Command, Group
from streamer.cli import bench_commands as bench
from streamer.cli import control_commands as control
from streamer.cli import export_commands as export
from streamer.cli import live_commands as live
from streamer.cli import model_commands as model
from streamer.cli import region_options as regions
from streamer.cli import render_commands as render
from streamer.cli import serve_commands as serve
from streamer.cli import studio_commands as studio
from streamer.cli import training_commands as training
from streamer.live import LiveConfigError
from streamer.render import RenderConfigError
from streamer.serve.config import ServeConfigError
from streamer.studio.config import StudioConfig, StudioConfigError
from streamer.temporal.options import with_preset
from training.config import TrainConfigError

GROUPS: tuple[Group, ...] = (
    Group(("weights",), "get model weights: import or download"),
    Group(
        ("control",),
        "switch style, alpha or regions of a running `stylestream live` or `serve`",
        "Send a command to a running `stylestream live` (its --control endpoint) or "
        "`stylestream serve`: set-style IMAGE [IMAGE...] [--weights W...], set-alpha A, "
        "set-regions --region style=IMG,key=green|mask=PNG ... [--uncovered content], "
        "clear-regions, status; for serve also add-stream, remove-stream, list-streams and "
        "--stream NAME on the others.",
        options=control.ControlTarget,
    ),
    Group(("keys",), "CURVE keys for encrypted streams"),
    Group(("export",), "export the model for other runtimes (onnx)", metavar="FORMAT"),
    Group(
        ("bench",),
        "benchmarks that print numbers (model, fidelity, render, live, train, serve, studio, "
        "regions)",
        "Benchmarks that print numbers; ratios are measured in one process.",
        metavar="BENCHMARK",
    ),
)

_IMPORT_HELP = (
    "Find vgg_normalised.pth and the latest_net_*.pth files under SRC (searched recursively; "
    ".zip/.tar packages are read in place), check every key and shape, and write one "
    "safetensors file."
)
_LIVE_HELP = (
    "Stylize a webcam, a network stream (RTSP, RTMP, HLS, SRT) or a file and publish every "
    "frame over ZeroMQ (and/or record it), with low latency: when the model is slower than the "
    "source, the oldest frames are dropped. Switch style while running with `stylestream "
    "control`. Watch with `stylestream view`."
)
_SERVE_HELP = (
    "Stylize many live streams (webcams, RTSP/RTMP/HLS/SRT, files, lavfi) with one model: the "
    "newest frame of every stream is batched into one model call, each frame with its stream's "
    "style. Streams are published on one ZeroMQ endpoint, one topic per stream, and can be "
    "added, removed and restyled at run time with `stylestream control`. A stream that fails "
    "never stops the others."
)
_STUDIO_HELP = (
    "Serve a page where the browser's camera is sent to the server over WebRTC, stylized (each "
    "browser its own stream of the multi-stream engine, all batched on one model) and sent back "
    "in real time. Pick a painting, upload your own, mix two, set the strength, take snapshots, "
    "record on the server. Loopback by default; --allow-remote serves HTTPS with an access token."
)
_EVAL_HELP = (
    "Warping error (DIS flow on the input frames, forward-backward occlusion mask, mean "
    "|o_t+1 - warp(o_t)| in [0, 1]) for the input itself (the floor) and each checkpoint and "
    "style, plus global style / content losses and fps. Typically compare the video model with "
    "the published image model."
)
_TRAIN_HELP = (
    "Train the video AdaAttN (cosine attention + image-similarity loss). Settings: the keys of "
    "a YAML file given with --config (see configs/train_video.yaml, every key documented "
    "there), then --key value flags or KEY=VALUE overrides (the same keys). Resume with "
    "resume=auto. Several GPUs: torchrun --nproc_per_node N --no-python stylestream train ..."
)

COMMANDS: tuple[Command, ...] = (
    # -- model
    Command(("weights", "import"), model.WeightsImportOptions, model.run_weights_import,
            "import the published .pth files (a directory or the downloaded .zip) into one "
            "safetensors file", _IMPORT_HELP),
    Command(("weights", "download"), model.WeightsDownloadOptions, model.run_weights_download,
            "download the published weights from Google Drive and import them into the cache",
            config_file=False),
    Command(("image",), model.ImageOptions, model.run_image, "stylize one picture",
            "Stylize CONTENT with one or more styles (weighted mix). Content and styles are "
            "used at their native size unless --size / --style-size say otherwise.",
            defaults=model.IMAGE_DEFAULTS, help_overrides=model.IMAGE_HELP,
            prepare=regions.with_region_styles),
    Command(("info",), model.InfoOptions, model.run_info,
            "show a checkpoint's model config and metadata", config_file=False),
    # -- render
    Command(("render",), render.RenderOptions, render.run_render,
            "stylize a video file (or frames) into an MP4 with its audio",
            "Stylize a video file, image sequence or lavfi source into an MP4 (audio copied "
            "unchanged, timing kept, playable even after a crash) or into PNG frames.",
            help_overrides=render.RENDER_HELP, prepare=regions.with_region_styles,
            error=RenderConfigError),
    Command(("demo",), render.DemoOptions, render.run_demo,
            "render a short bundled clip into ./stylestream-demo.mp4",
            f"Make a 3-second clip from a bundled photo ({render.DEMO_INPUT}) and render it with "
            f"the bundled style into {render.DEMO_OUTPUT} (both overwritten). Works offline: "
            "without weights it runs the untrained model and says so.", config_file=False),
    # -- live, view, keys
    Command(("live",), live.LiveCommandOptions, live.run_live_command,
            "stylize a webcam, RTSP stream or file live and publish it over ZeroMQ", _LIVE_HELP,
            defaults=live.LIVE_DEFAULTS, help_overrides=live.MODEL_HELP,
            prepare=live.prepare_live, error=LiveConfigError),
    Command(("view",), live.ViewOptions, live.run_view_command,
            "watch a published stream in a browser page (and/or record it to MP4)",
            "Subscribe to a `stylestream live` publisher, serve a local page that shows the "
            "stream (MJPEG; works on headless machines via an SSH tunnel), and/or record it to "
            "an MP4 file."),
    Command(("keys", "generate"), live.KeysGenerateOptions, live.run_keys_generate,
            "create a publisher key pair and a subscriber key pair in DIR", config_file=False),
    # -- control actions
    Command(("control", "set-style"), control.SetStyleOptions, control.run_set_style,
            "switch to a style (or a mix: several images with --weights)", config_file=False),
    Command(("control", "set-alpha"), control.SetAlphaOptions, control.run_set_alpha,
            "content strength 0..1", config_file=False),
    Command(("control", "set-regions"), control.SetRegionsOptions, control.run_set_regions,
            "replace every region: --region style=IMG,key=green|mask=PNG[,invert=1] (repeat)",
            config_file=False),
    Command(("control", "clear-regions"), control.ClearRegionsOptions,
            control.run_clear_regions, "back to the plain style", config_file=False),
    Command(("control", "status"), control.TargetOnly, control.run_status,
            "print the run's status (JSON)", config_file=False),
    Command(("control", "add-stream"), control.AddStreamOptions, control.run_add_stream,
            "serve: start a stream (same keys as a YAML streams: entry)", config_file=False),
    Command(("control", "remove-stream"), control.RemoveStreamOptions,
            control.run_remove_stream, "serve: stop a stream, finalize its record",
            config_file=False),
    Command(("control", "list-streams"), control.TargetOnly, control.run_list_streams,
            "serve: the streams and their settings", config_file=False),
    # -- serve, studio
    Command(("serve",), serve.ServeOptions, serve.run_serve_command,
            "many live streams, one model: each stream its own style, one ZeroMQ topic each",
            _SERVE_HELP, help_overrides=live.MODEL_HELP, prepare=serve.with_flag_streams,
            error=ServeConfigError),
    Command(("studio",), StudioConfig, studio.run_studio_command,
            "the browser studio: your webcam in a page, stylized by the server (WebRTC)",
            _STUDIO_HELP, defaults=studio.STUDIO_DEFAULTS, help_overrides=studio.STUDIO_HELP,
            prepare=with_preset,
            error=StudioConfigError),
    # -- export, train, eval
    Command(("export", "onnx"), export.ExportOnnxOptions, export.run_export_onnx,
            "the video model as ONNX: a frame graph taking a style's sums as inputs (one file "
            "for every style, any frame size) and a style graph beside it",
            "Write OUTPUT (frames: content, style_weight, style_center, alpha -> stylized) and "
            "OUTPUT-style.onnx (style image -> style_weight, style_center); float32, dynamic "
            "batch, height and width (multiples of 4). Needs pip install -e '.[onnx]'."),
    Command(("train",), training.TrainOptions, training.run_train,
            "train the temporally stable video model on your photos and paintings",
            _TRAIN_HELP, prepare=training.apply_overrides, error=TrainConfigError),
    Command(("eval",), training.EvalOptions, training.run_eval,
            "measure temporal stability (warping error) of models on a clip", _EVAL_HELP,
            error=training.EvalUsageError),
    # -- benchmarks
    Command(("bench", "model"), model.BenchModelOptions, model.run_bench_model,
            "per-frame time of the published formulation vs ours (random weights)",
            config_file=False),
    Command(("bench", "fidelity"), export.BenchFidelityOptions, export.run_bench_fidelity,
            "PSNR and max/mean abs difference of each precision against fp32 on the bundled "
            "photos"),
    Command(("bench", "render"), bench.BenchRenderOptions, bench.run_bench_render,
            "decode->stylize->encode: stage by stage vs pipelined, and the overlap efficiency"),
    Command(("bench", "live"), live.BenchLiveOptions, live.run_bench_live_command,
            "end-to-end latency (p50, p95), delivered fps and drops of a live run"),
    Command(("bench", "train"), training.BenchTrainOptions, training.run_bench_train,
            "training throughput (samples/s), 1 vs several processes", config_file=False),
    Command(("bench", "serve"), serve.BenchServeOptions, serve.run_bench_serve_command,
            "one serve process with N streams vs N live processes: total fps, latency, "
            "batching gain"),
    Command(("bench", "studio"), studio.BenchStudioOptions, studio.run_bench_studio_command,
            "round-trip latency of the browser studio (headless chromium, fake camera with "
            "frame markers)"),
    Command(("bench", "regions"), regions.BenchRegionsOptions, regions.run_bench_regions,
            "per-frame time without regions vs with N regions (random weights, masks half/half)",
            config_file=False),
    Command(("bench", "temporal"), bench.BenchTemporalOptions, bench.run_bench_temporal,
            "flicker and speed of every temporal setting on a pan + cut clip (random weights)",
            config_file=False),
    Command(("bench", "outputs"), bench.BenchOutputsOptions, bench.run_bench_outputs,
            "loopback latency of the RTMP, SRT, RTSP and HLS outputs; CPU of one 720p output",
            config_file=False),
)  # fmt: skip

__all__ = ["COMMANDS", "GROUPS"]
