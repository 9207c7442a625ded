"""Writes hard.jsonl: our own LeetCode-style hard problems, with hidden tests made by differential testing.

Each problem is a statement in our own words, 2-3 visible examples, a reference solution and a random-input
generator; the hidden tests are `hidden_count` generated inputs with the reference's outputs. Run it after editing a
problem: ``python3 domains/code/problems/build.py``. tests/code checks that the file matches what this script makes.
"""

from __future__ import annotations

import json
from pathlib import Path

from domains.code.problems import differential_tests, parse_assert

PROBLEMS = [
    dict(
        id="trapping-rain-water",
        entry_point="trap",
        signature="def trap(height: List[int]) -> int:",
        statement="""Bars of width 1 stand side by side; height[i] is the height of bar i (0 <= height[i] <= 10^5,
1 <= len(height) <= 2*10^4). After heavy rain, water is held wherever it is bounded by taller bars on both
sides. Return how many unit squares of water are held in total.

Example 1: height = [0,1,0,2,1,0,1,3,2,1,2,1] -> 6
Example 2: height = [4,2,0,3,2,5] -> 9""",
        visible_tests=["assert trap([0,1,0,2,1,0,1,3,2,1,2,1]) == 6", "assert trap([4,2,0,3,2,5]) == 9"],
        reference_solution='''def trap(height):
    left, right = 0, len(height) - 1
    best_left = best_right = water = 0
    while left < right:
        if height[left] < height[right]:
            best_left = max(best_left, height[left])
            water += best_left - height[left]
            left += 1
        else:
            best_right = max(best_right, height[right])
            water += best_right - height[right]
            right -= 1
    return water
''',
        generator='''def generate(rng):
    n = rng.randint(1, 40)
    return ([rng.randint(0, rng.choice([3, 10, 100])) for _ in range(n)],)
''',
    ),
    dict(
        id="median-of-two-sorted-arrays",
        entry_point="findMedianSortedArrays",
        signature="def findMedianSortedArrays(nums1: List[int], nums2: List[int]) -> float:",
        statement="""Two lists nums1 and nums2 are each sorted in non-decreasing order (0 <= lengths <= 1000, at
least one is non-empty, values within +-10^6). Return the median of all their values together as a float: the
middle value, or the mean of the two middle values when the total count is even. Aim for O(log(m+n)) time.

Example 1: nums1 = [1,3], nums2 = [2] -> 2.0
Example 2: nums1 = [1,2], nums2 = [3,4] -> 2.5""",
        visible_tests=["assert findMedianSortedArrays([1,3], [2]) == 2.0",
                       "assert findMedianSortedArrays([1,2], [3,4]) == 2.5"],
        reference_solution='''def findMedianSortedArrays(nums1, nums2):
    merged = sorted(nums1 + nums2)
    n = len(merged)
    if n % 2:
        return float(merged[n // 2])
    return (merged[n // 2 - 1] + merged[n // 2]) / 2.0
''',
        generator='''def generate(rng):
    a = sorted(rng.randint(-50, 50) for _ in range(rng.randint(0, 12)))
    b = sorted(rng.randint(-50, 50) for _ in range(rng.randint(0 if a else 1, 12)))
    return (a, b)
''',
    ),
    dict(
        id="longest-valid-parentheses",
        entry_point="longestValidParentheses",
        signature="def longestValidParentheses(s: str) -> int:",
        statement="""s holds only the characters '(' and ')' (0 <= len(s) <= 3*10^4). Return the length of the longest
contiguous substring of s that is a well-formed (balanced and properly nested) parentheses string.

Example 1: s = "(()" -> 2
Example 2: s = ")()())" -> 4
Example 3: s = "" -> 0""",
        visible_tests=['assert longestValidParentheses("(()") == 2', 'assert longestValidParentheses(")()())") == 4',
                       'assert longestValidParentheses("") == 0'],
        reference_solution='''def longestValidParentheses(s):
    stack, best = [-1], 0
    for i, ch in enumerate(s):
        if ch == "(":
            stack.append(i)
        else:
            stack.pop()
            if not stack:
                stack.append(i)
            else:
                best = max(best, i - stack[-1])
    return best
''',
        generator='''def generate(rng):
    return ("".join(rng.choice("()") for _ in range(rng.randint(0, 30))),)
''',
    ),
    dict(
        id="regex-dot-star-matching",
        entry_point="isMatch",
        signature="def isMatch(s: str, p: str) -> bool:",
        statement="""Implement full-string pattern matching where the pattern p may contain lowercase letters, '.'
(matches any single character) and '*' (zero or more of the element just before it; p never starts with '*' and
never has two '*' in a row). s holds lowercase letters only. Both lengths are at most 20. Return True when the
pattern matches all of s.

Example 1: s = "aa", p = "a" -> False
Example 2: s = "aa", p = "a*" -> True
Example 3: s = "ab", p = ".*" -> True""",
        visible_tests=['assert isMatch("aa", "a") == False', 'assert isMatch("aa", "a*") == True',
                       'assert isMatch("ab", ".*") == True'],
        reference_solution='''def isMatch(s, p):
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def match(i, j):
        if j == len(p):
            return i == len(s)
        first = i < len(s) and p[j] in (s[i], ".")
        if j + 1 < len(p) and p[j + 1] == "*":
            return match(i, j + 2) or (first and match(i + 1, j))
        return first and match(i + 1, j + 1)

    return match(0, 0)
''',
        generator='''def generate(rng):
    s = "".join(rng.choice("ab") for _ in range(rng.randint(0, 8)))
    parts = []
    for _ in range(rng.randint(0, 6)):
        parts.append(rng.choice("ab."))
        if rng.random() < 0.4:
            parts.append("*")
    return (s, "".join(parts))
''',
    ),
    dict(
        id="wildcard-matching",
        entry_point="wildcardMatch",
        signature="def wildcardMatch(s: str, p: str) -> bool:",
        statement="""Match the whole string s (lowercase letters) against pattern p, where '?' matches exactly one
character and '*' matches any sequence of characters, including the empty one; other pattern characters are
lowercase letters matching themselves. Lengths are at most 2000. Return True when p matches all of s.

Example 1: s = "aa", p = "a" -> False
Example 2: s = "aa", p = "*" -> True
Example 3: s = "cb", p = "?a" -> False""",
        visible_tests=['assert wildcardMatch("aa", "a") == False', 'assert wildcardMatch("aa", "*") == True',
                       'assert wildcardMatch("cb", "?a") == False'],
        reference_solution='''def wildcardMatch(s, p):
    row = [True] + [False] * len(s)
    for ch in p:
        new = [row[0] and ch == "*"] + [False] * len(s)
        for i in range(1, len(s) + 1):
            if ch == "*":
                new[i] = new[i - 1] or row[i]
            else:
                new[i] = row[i - 1] and ch in ("?", s[i - 1])
        row = new
    return row[len(s)]
''',
        generator='''def generate(rng):
    s = "".join(rng.choice("abc") for _ in range(rng.randint(0, 10)))
    p = "".join(rng.choice("abc?**") for _ in range(rng.randint(0, 8)))
    return (s, p)
''',
    ),
    dict(
        id="largest-rectangle-in-histogram",
        entry_point="largestRectangleArea",
        signature="def largestRectangleArea(heights: List[int]) -> int:",
        statement="""heights[i] is the height of bar i of a histogram whose bars all have width 1 (1 <= len(heights)
<= 10^5, 0 <= heights[i] <= 10^4). Return the area of the largest axis-aligned rectangle that fits inside the
histogram.

Example 1: heights = [2,1,5,6,2,3] -> 10
Example 2: heights = [2,4] -> 4""",
        visible_tests=["assert largestRectangleArea([2,1,5,6,2,3]) == 10", "assert largestRectangleArea([2,4]) == 4"],
        reference_solution='''def largestRectangleArea(heights):
    stack, best = [], 0
    for i, h in enumerate(list(heights) + [0]):
        start = i
        while stack and stack[-1][1] >= h:
            start, top = stack.pop()
            best = max(best, top * (i - start))
        stack.append((start, h))
    return best
''',
        generator='''def generate(rng):
    return ([rng.randint(0, rng.choice([5, 50])) for _ in range(rng.randint(1, 30))],)
''',
    ),
    dict(
        id="sliding-window-maximum",
        entry_point="maxSlidingWindow",
        signature="def maxSlidingWindow(nums: List[int], k: int) -> List[int]:",
        statement="""A window of size k (1 <= k <= len(nums) <= 10^5) slides over nums from the far left to the far
right, one position at a time. Return the list of the window's maximum at each of its len(nums) - k + 1 positions.
An O(n) solution is expected.

Example 1: nums = [1,3,-1,-3,5,3,6,7], k = 3 -> [3,3,5,5,6,7]
Example 2: nums = [1], k = 1 -> [1]""",
        visible_tests=["assert maxSlidingWindow([1,3,-1,-3,5,3,6,7], 3) == [3,3,5,5,6,7]",
                       "assert maxSlidingWindow([1], 1) == [1]"],
        reference_solution='''def maxSlidingWindow(nums, k):
    from collections import deque

    window, out = deque(), []
    for i, x in enumerate(nums):
        while window and nums[window[-1]] <= x:
            window.pop()
        window.append(i)
        if window[0] <= i - k:
            window.popleft()
        if i >= k - 1:
            out.append(nums[window[0]])
    return out
''',
        generator='''def generate(rng):
    nums = [rng.randint(-20, 20) for _ in range(rng.randint(1, 25))]
    return (nums, rng.randint(1, len(nums)))
''',
    ),
    dict(
        id="minimum-window-substring",
        entry_point="minWindow",
        signature="def minWindow(s: str, t: str) -> str:",
        statement="""Given strings s and t of letters (1 <= lengths <= 10^5), return the shortest contiguous substring
of s that contains every character of t with at least its multiplicity in t. If there is none, return "". If several
shortest windows exist, return the leftmost one.

Example 1: s = "ADOBECODEBANC", t = "ABC" -> "BANC"
Example 2: s = "a", t = "aa" -> \"\"""",
        visible_tests=['assert minWindow("ADOBECODEBANC", "ABC") == "BANC"', 'assert minWindow("a", "aa") == ""'],
        reference_solution='''def minWindow(s, t):
    from collections import Counter

    need, missing = Counter(t), len(t)
    best = (float("inf"), 0, 0)
    left = 0
    for right, ch in enumerate(s, 1):
        if need[ch] > 0:
            missing -= 1
        need[ch] -= 1
        if missing == 0:
            while need[s[left]] < 0:
                need[s[left]] += 1
                left += 1
            if right - left < best[0]:
                best = (right - left, left, right)
            need[s[left]] += 1
            missing += 1
            left += 1
    return s[best[1]:best[2]] if best[0] != float("inf") else ""
''',
        generator='''def generate(rng):
    s = "".join(rng.choice("abcd") for _ in range(rng.randint(1, 25)))
    t = "".join(rng.choice("abcd") for _ in range(rng.randint(1, 4)))
    return (s, t)
''',
    ),
    dict(
        id="burst-balloons",
        entry_point="maxCoins",
        signature="def maxCoins(nums: List[int]) -> int:",
        statement="""Balloons in a row carry the numbers nums[0..n-1] (1 <= n <= 300, 0 <= nums[i] <= 100). Bursting
balloon i earns left * nums[i] * right coins, where left and right are the numbers on its current neighbours (a
missing neighbour counts as 1); the burst balloon then disappears and its neighbours become adjacent. Burst them
all in the best order and return the maximum total of coins.

Example 1: nums = [3,1,5,8] -> 167
Example 2: nums = [1,5] -> 10""",
        visible_tests=["assert maxCoins([3,1,5,8]) == 167", "assert maxCoins([1,5]) == 10"],
        reference_solution='''def maxCoins(nums):
    vals = [1] + list(nums) + [1]
    n = len(vals)
    best = [[0] * n for _ in range(n)]
    for width in range(2, n):
        for left in range(0, n - width):
            right = left + width
            best[left][right] = max(
                best[left][k] + vals[left] * vals[k] * vals[right] + best[k][right] for k in range(left + 1, right)
            )
    return best[0][n - 1]
''',
        generator='''def generate(rng):
    return ([rng.randint(0, 12) for _ in range(rng.randint(1, 9))],)
''',
    ),
    dict(
        id="count-smaller-after-self",
        entry_point="countSmaller",
        signature="def countSmaller(nums: List[int]) -> List[int]:",
        statement="""For each position i of nums (1 <= len(nums) <= 10^5, values within +-10^4), count how many
values to the right of i are strictly smaller than nums[i]. Return the list of counts. O(n log n) is expected.

Example 1: nums = [5,2,6,1] -> [2,1,1,0]
Example 2: nums = [-1,-1] -> [0,0]""",
        visible_tests=["assert countSmaller([5,2,6,1]) == [2,1,1,0]", "assert countSmaller([-1,-1]) == [0,0]"],
        reference_solution='''def countSmaller(nums):
    import bisect

    seen, out = [], []
    for x in reversed(nums):
        out.append(bisect.bisect_left(seen, x))
        bisect.insort(seen, x)
    return out[::-1]
''',
        generator='''def generate(rng):
    return ([rng.randint(-10, 10) for _ in range(rng.randint(1, 25))],)
''',
    ),
    dict(
        id="distinct-subsequences",
        entry_point="numDistinct",
        signature="def numDistinct(s: str, t: str) -> int:",
        statement="""Count the ways to pick characters of s, keeping their order, so that the picked characters spell
t exactly (two ways differ when they pick a different set of positions). 1 <= len(s), len(t) <= 1000; letters only.

Example 1: s = "rabbbit", t = "rabbit" -> 3
Example 2: s = "babgbag", t = "bag" -> 5""",
        visible_tests=['assert numDistinct("rabbbit", "rabbit") == 3', 'assert numDistinct("babgbag", "bag") == 5'],
        reference_solution='''def numDistinct(s, t):
    ways = [1] + [0] * len(t)
    for ch in s:
        for j in range(len(t), 0, -1):
            if t[j - 1] == ch:
                ways[j] += ways[j - 1]
    return ways[len(t)]
''',
        generator='''def generate(rng):
    s = "".join(rng.choice("ab") for _ in range(rng.randint(1, 18)))
    t = "".join(rng.choice("ab") for _ in range(rng.randint(1, 4)))
    return (s, t)
''',
    ),
    dict(
        id="n-queens-count",
        entry_point="totalNQueens",
        signature="def totalNQueens(n: int) -> int:",
        statement="""Return the number of ways to place n queens on an n x n chessboard so that no two queens attack
each other (no shared row, column or diagonal). 1 <= n <= 9.

Example 1: n = 4 -> 2
Example 2: n = 1 -> 1""",
        visible_tests=["assert totalNQueens(4) == 2", "assert totalNQueens(1) == 1"],
        reference_solution='''def totalNQueens(n):
    def place(row, cols, diag, anti):
        if row == n:
            return 1
        total = 0
        for c in range(n):
            if c in cols or row - c in diag or row + c in anti:
                continue
            total += place(row + 1, cols | {c}, diag | {row - c}, anti | {row + c})
        return total

    return place(0, frozenset(), frozenset(), frozenset())
''',
        generator='''def generate(rng):
    return (rng.randint(1, 8),)
''',
        hidden_count=12,
    ),
]


def build(path: Path) -> list[dict]:
    records = []
    for spec in PROBLEMS:
        record = dict(spec)
        record.setdefault("hidden_count", 30)
        record.setdefault("seed", 0)
        for t in record["visible_tests"]:
            parse_assert(t, record["entry_point"])  # fails loudly on a malformed example
        hidden = differential_tests(record["reference_solution"], record["generator"], record["entry_point"],
                                    count=record["hidden_count"], seed=record["seed"])
        record["hidden_tests"] = [{"call": t.call, "expected": t.expected} for t in hidden]
        records.append(record)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return records


if __name__ == "__main__":
    out = Path(__file__).with_name("hard.jsonl")
    written = build(out)
    print(f"wrote {len(written)} problems to {out}")
