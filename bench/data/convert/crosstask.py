"""CrossTask (Zhukov et al., CVPR 2019, arXiv 1903.08225): instructional videos of 18 primary tasks, with the
steps each shows annotated in time. Two benchmarks from one release, as experiments/datasets.yaml names them:
crosstask_step (each annotated step a segment, labelled with its step) and crosstask_task (each whole video,
labelled with its task).

Release files (crosstask_release.zip, https://github.com/DmZhukov/CrossTask, read as its data.py reads them):
  tasks_primary.txt              blocks of 5 lines and a blank one: task id, title ("Make Jello Shots"), wikiHow
                                 url, number of steps, the steps comma-separated ("pour water,stir mixture,...")
  videos_val.csv                 task id,YouTube id,url   (no header; the validation videos)
  annotations/<task>_<video>.csv step,start,end           (no header; step numbered from 1, seconds)
The release has no videos: they are downloaded from YouTube, as <video>.mp4 (or .webm/.mkv), flat or in a
folder per task id.

Items are the videos of videos_val.csv. Task classes are the 18 primary tasks in file order, named by title;
step classes are the distinct step names of the primary tasks in file order (a name several tasks share,
"pour water", is one class: a text classifier cannot tell two equal names apart). The prompt templates are
ours (coin.py's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data.convert.coin import HOWTO_TEMPLATES
from bench.data.convert.common import Context, ConvertError, find_media, register, with_suffixes
from bench.data.convert.layouts import TEMPLATES, write_classification
from bench.data.convert.segments import segment


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    steps: tuple[str, ...]


def read_tasks(path: Path) -> dict[str, Task]:
    """tasks_primary.txt: id, title, url, number of steps, steps, blank line; every block checked."""
    lines = path.read_text().splitlines()
    tasks: dict[str, Task] = {}
    n = 0
    while n < len(lines):
        if not lines[n].strip():
            n += 1
            continue
        block = [x.strip() for x in lines[n:n + 5]]
        steps = tuple(s.strip() for s in block[4].split(",")) if len(block) == 5 else ()
        if len(block) < 5 or not block[3].isdigit() or int(block[3]) != len(steps) or not all(steps):
            raise ConvertError(f"{path}:{n + 1}: expected a block of task id, title, url, number of steps and the "
                               f"steps comma-separated (as many as the number), got {block!r:.200}")
        tasks[block[0]] = Task(block[0], block[1], steps)
        n += 5
    if not tasks:
        raise ConvertError(f"{path}: no tasks")
    return tasks


def val_videos(ctx: Context, tasks: dict[str, Task]) -> list[tuple[str, str]]:
    """(task id, video id) of videos_val.csv; a video of a task that is not primary is an error."""
    files = ("videos_val.csv", "crosstask_release/videos_val.csv")
    rows, where = ctx.csv(*files, fieldnames=["task", "video", "url"]), ctx.source(*files)
    out = []
    for n, r in enumerate(rows, start=1):
        task, vid = (r["task"] or "").strip(), (r["video"] or "").strip()
        if task not in tasks or not vid:
            raise ConvertError(f"{where}:{n}: expected 'task id,video id,url' with a task of tasks_primary.txt, "
                               f"got {task!r}, {vid!r}")
        out.append((task, vid))
    return out


def steps_of(ctx: Context, task: Task, vid: str) -> list[tuple[str, dict]]:
    """(step name, start/end) of annotations/<task>_<video>.csv."""
    files = (f"annotations/{task.id}_{vid}.csv", f"crosstask_release/annotations/{task.id}_{vid}.csv")
    rows, where = ctx.csv(*files, fieldnames=["step", "start", "end"]), ctx.source(*files)
    out = []
    for n, r in enumerate(rows, start=1):
        try:
            k, start, end = int(r["step"]), float(r["start"]), float(r["end"])
        except (TypeError, ValueError):
            raise ConvertError(f"{where}:{n}: expected 'step,start,end' (step number, seconds), got {r}") from None
        if not 1 <= k <= len(task.steps):
            raise ConvertError(f"{where}:{n}: step {k} is not one of task {task.id}'s steps 1..{len(task.steps)}")
        out.append((task.steps[k - 1], segment(start, end, f"{where}:{n}")))
    return out


def release(ctx: Context) -> tuple[dict[str, Task], list[tuple[str, str, str]]]:
    """The primary tasks and the validation videos whose file exists: (task id, video id, path)."""
    tasks = read_tasks(ctx.source("tasks_primary.txt", "crosstask_release/tasks_primary.txt"))
    found = []
    for task, vid in val_videos(ctx, tasks):
        path = find_media(ctx, with_suffixes(vid, f"{task}/{vid}"), f"task {task}")
        if path is not None:
            found.append((task, vid, path))
    return tasks, found


@register("crosstask_step", "CrossTask validation: classification of step segments (primary tasks' steps)",
          options=(TEMPLATES,), source="crosstask_release (tasks_primary.txt, videos_val.csv, annotations/), "
                                       "https://github.com/DmZhukov/CrossTask")
def convert_step(ctx: Context) -> dict[str, dict]:
    tasks, found = release(ctx)
    names = list(dict.fromkeys(s for t in tasks.values() for s in t.steps))
    rows = [{"video": path, **span, "label": step} for task, vid, path in found
            for step, span in steps_of(ctx, tasks[task], vid)]
    return write_classification(ctx, rows, names, HOWTO_TEMPLATES)


@register("crosstask_task", "CrossTask validation: classification of whole videos (18 primary tasks)",
          options=(TEMPLATES,), source="crosstask_release (tasks_primary.txt, videos_val.csv), "
                                       "https://github.com/DmZhukov/CrossTask")
def convert_task(ctx: Context) -> dict[str, dict]:
    tasks, found = release(ctx)
    rows = [{"video": path, "label": tasks[task].title} for task, vid, path in found]
    return write_classification(ctx, rows, [t.title for t in tasks.values()], HOWTO_TEMPLATES)
