"""MSR-VTT, the 1k-A test split (JSFusion; Yu et al. 2018), as CLIP4Clip, UMT and VideoMAE v2 read it.

Release files (CLIP4Clip's `msrvtt_data.zip`, https://github.com/ArrowLuo/CLIP4Clip#data-preparing):
  MSRVTT_JSFUSION_test.csv   key,vid_key,video_id,sentence  (1,000 rows: one caption per test video)
  MSRVTT_data.json           {"videos": [{"video_id", ...}], "sentences": [{"video_id", "caption", ...}]}
and the videos as `<video_id>.mp4` (MSRVTT/videos/all in the original release).

Retrieval queries are the 1k-A captions (one per video: the standard protocol). Captioning's references
are every caption of the video in MSRVTT_data.json (20 each) when it is there, else the 1k-A caption.
"""

from __future__ import annotations

from bench.data.convert.common import Context, ConvertError, register


@register("msrvtt", "MSR-VTT 1k-A test (JSFusion split): retrieval and captioning",
          source="CLIP4Clip's msrvtt_data (MSRVTT_JSFUSION_test.csv, MSRVTT_data.json), https://github.com/ArrowLuo/CLIP4Clip")
def convert(ctx: Context) -> dict[str, dict]:
    rows = ctx.csv("MSRVTT_JSFUSION_test.csv", "msrvtt_data/MSRVTT_JSFUSION_test.csv")
    if not rows or not {"video_id", "sentence"} <= set(rows[0]):
        raise ConvertError(f"{ctx.src}: MSRVTT_JSFUSION_test.csv needs columns video_id and sentence "
                           f"(key,vid_key,video_id,sentence), got {list(rows[0]) if rows else 'no rows'}")
    refs: dict[str, list[str]] = {}
    if ctx.has("MSRVTT_data.json", "msrvtt_data/MSRVTT_data.json"):
        for s in ctx.json("MSRVTT_data.json", "msrvtt_data/MSRVTT_data.json").get("sentences", []):
            refs.setdefault(s["video_id"], []).append(s["caption"].strip())
    retrieval, captioning = [], []
    for r in rows:
        path = ctx.first_media(r["video_id"])
        if path is None:
            continue
        retrieval.append({"video": path, "caption": r["sentence"].strip()})
        captioning.append({"video": path, "captions": refs.get(r["video_id"]) or [r["sentence"].strip()]})
    ctx.write_jsonl("test_1ka.jsonl", retrieval)
    ctx.write_jsonl("test_1ka_captions.jsonl", captioning)
    return {"retrieval": {"annotations": "test_1ka.jsonl"}, "captioning": {"annotations": "test_1ka_captions.jsonl"}}
