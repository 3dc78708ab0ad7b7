"""The simulator's synthetic news: invented stories, in each upstream's raw shape.

Timestamps are minutes before "now", computed per request, so the data is always recent.
Every quirk the normalizers handle is here: NewsAPI removed items, ` - Publisher` title
suffixes, truncated content, google-news redirects, stories relayed between providers
with tracking parameters (so deduplication has work to do), Guardian items with missing
`fields`, HTML and entities, string numbers, Hacker News Ask HN posts without a URL, and
comments with a null title. Articles have a body, as the real ones do: the Guardian's
`bodyText` (plain text, served only when `show-fields` asks for it) and NewsAPI's
`content` (its first 200 characters, then `… [+N chars]`).
"""

from __future__ import annotations

import html
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

# (section, headline, trail text with HTML, byline) — The Guardian's own stories.
GUARDIAN_STORIES = [
    (
        "technology",
        "Chip designers turn to light to cut datacentre power",
        "<p>Photonic links promise <strong>half</strong> the watts per bit.</p>",
        "Alex Hern",
    ),
    (
        "technology",
        "Open-source maintainers win funding pledge from cloud firms",
        "Three providers commit &pound;20m to critical libraries.",
        "Dan Milmo",
    ),
    (
        "technology",
        "Why your phone&#8217;s battery now lasts a week",
        "<p>Silicon anodes reach the mass market.</p>",
        None,
    ),
    (
        "business",
        "Retail sales rise for third month as shoppers return",
        "Figures beat forecasts &amp; lift the pound.",
        "Richard Partington",
    ),
    (
        "money",
        "Savings rates fall behind inflation again",
        "<p>What savers can do about it.</p>",
        "Hilary Osborne",
    ),
    (
        "science",
        "Astronomers map the coldest known brown dwarf",
        "Webb telescope finds an object at &minus;30C.",
        "Ian Sample",
    ),
    (
        "environment",
        "Wind farms supplied half of Europe&#8217;s power in October",
        None,
        "Fiona Harvey",
    ),
    (
        "sport",
        "Underdogs reach cup final after penalty shootout",
        "<p>A night to remember in the north.</p>",
        "Barney Ronay",
    ),
    (
        "football",
        "Transfer window: clubs brace for record January",
        "Spending could pass &euro;2bn.",
        None,
    ),
    (
        "film",
        "Quiet science-fiction drama tops the box office",
        "<p>A surprise hit with <em>no</em> explosions.</p>",
        "Peter Bradshaw",
    ),
    (
        "music",
        "Veteran band announce farewell tour",
        "Forty dates across three continents.",
        "Laura Snapes",
    ),
    (
        "books",
        "Debut novel wins first-book prize",
        "<p>Judges praise its &ldquo;fearless&rdquo; voice.</p>",
        None,
    ),
    (
        "society",
        "GP waiting times fall in pilot areas",
        "Same-day appointments rise by a third.",
        "Denis Campbell",
    ),
    (
        "world",
        "Coastal cities agree shared flood defence plan",
        "<p>Twelve mayors sign the accord.</p>",
        "Damian Carrington",
    ),
    ("politics", "Parliament debates four-day week trial", None, None),
    (
        "games",
        "Indie studio&#8217;s puzzle game sells a million copies",
        "<p>Made by four people in two years.</p>",
        "Keza MacDonald",
    ),
    (
        "culture",
        "Regional theatres and galleries share one festival pass",
        "<p>One ticket, <strong>forty</strong> venues &#8211; and free entry for under-18s.</p>",
        "Charlotte Higgins &amp; Mark Brown",
    ),
    (
        "tv-and-radio",
        "Late-night radio drama finds a new young audience",
        "Podcast downloads tripled after the finale.",
        '<a href="https://www.theguardian.com/profile/lucy-mangan">Lucy Mangan</a>',
    ),
    (
        "stage",
        "Musical about a village bus route transfers to the West End",
        "<p>The show&#x2019;s run is extended to June.</p>",
        "Arifa Akbar",
    ),
    (
        "artanddesign",
        "Lost sketchbook of a Victorian engineer goes on display",
        "Bridges, boilers &amp; a flying machine.",
        None,
    ),
    (
        "media",
        "Local newspapers test reader-funded newsrooms",
        "<p>Early results are &ldquo;encouraging&rdquo;.</p>",
        "Jim Waterson",
    ),
    (
        "technology",
        "Drone deliveries take off in rural Scotland",
        "<p>Parcels arrive by air &ndash; when the <em>battery</em> allows.</p>",
        "Alex Hern",
    ),
    (
        "world",
        "E-bike sales soar as cities add cycle lanes",
        "<p>Shops report waiting lists into spring.</p>",
        "Damian Carrington",
    ),
    (
        "society",
        "Covid-19 inquiry hears from care home staff",
        "Evidence sessions resume on Monday.",
        "Denis Campbell",
    ),
    ("football", "Drone over the pitch halts football match for 20 minutes", None, None),
    (
        "environment",
        "Survey drone counts seals on remote islands",
        "<p>Thermal cameras spot pups in the rocks.</p>",
        "Fiona Harvey",
    ),
]

# (category, publisher, headline, description) — NewsAPI's own stories.
NEWSAPI_STORIES = [
    (
        "technology",
        "Ars Technica",
        "New compiler cuts build times by 40 percent",
        "Incremental linking comes to the mainstream toolchain.",
    ),
    (
        "technology",
        "The Verge",
        "Foldable laptops finally get affordable",
        "Three models now cost under $1,000.",
    ),
    (
        "technology",
        "Wired",
        "Inside the race to build a quantum network",
        "Entangled links now span 100 km of fiber.",
    ),
    ("technology", "TechCrunch", "Startup raises $50M for battery recycling robots", None),
    (
        "business",
        "Reuters",
        "Central bank holds rates, signals cut in spring",
        "Policymakers cite cooling inflation.",
    ),
    (
        "business",
        "Bloomberg",
        "Shipping costs drop as new vessels enter service",
        "Container rates fall 12 percent as e-commerce slows.",
    ),
    (
        "entertainment",
        "Variety",
        "Streaming service renews hit comedy for fourth season",
        "Production resumes in March.",
    ),
    ("entertainment", "Billboard", "Surprise album tops charts in 30 countries", None),
    (
        "general",
        "Associated Press",
        "Volunteers restore historic lighthouse",
        "The 1870 tower shines again.",
    ),
    (
        "health",
        "STAT",
        "Trial shows new malaria vaccine 80 percent effective",
        "Results from a three-year study.",
    ),
    ("health", "Healthline", "Study links short walks after meals to better sleep", None),
    (
        "science",
        "Science News",
        "Bees can count to five, experiment suggests",
        "Researchers used sugar rewards.",
    ),
    (
        "science",
        "New Scientist",
        "Ancient river found beneath Antarctic ice",
        "Radar maps a 400 km channel.",
    ),
    ("sports", "ESPN", "Marathon record falls in cool conditions", "A new mark by 14 seconds."),
    ("sports", "BBC Sport", "Tennis star announces comeback after injury", None),
    (
        "technology",
        "The Verge",
        "Delivery drone makers race to double battery life",
        "Longer flights need lighter cells.",
    ),
    ("sports", "ESPN", "Football league bans drone flights over stadiums", "Clubs cite safety."),
    (
        "health",
        "STAT",
        "Covid-19 booster uptake rises among over-65s",
        "Clinics extend opening hours.",
    ),
    (
        "business",
        "Reuters",
        "AT&T sells its drone inspection unit",
        "The deal values the business at $1.2bn.",
    ),
]

# (title, url or None, story_text HTML or None, author) — Hacker News stories.
HN_STORIES = [
    (
        "Show HN: A tiny SQL database in 500 lines of C",
        "https://github.com/example/tinysql",
        None,
        "pg_fan",
    ),
    (
        "Ask HN: How do you keep on-call sustainable?",
        None,
        "<p>We&#x27;re a team of five &amp; rotate weekly.</p><p>What works for you?</p>",
        "tired_sre",
    ),
    (
        "The unreasonable effectiveness of boring technology",
        "https://blog.example.dev/boring-tech/",
        None,
        "mcfunley",
    ),
    (
        "Rust 2.0 roadmap published",
        "https://blog.rust-lang.example/2026/11/roadmap.html#plan",
        None,
        "steveklabnik",
    ),
    (
        "Ask HN: Best resources to learn compilers in 2026?",
        None,
        "<p>I know <i>some</i> Lisp.</p>",
        "learner42",
    ),
    (
        "A visual guide to TCP congestion control",
        "http://Networking.Example.com/tcp-guide?utm_source=hn",
        None,
        "vint",
    ),
    (
        "Why we moved off microservices",
        "https://engineering.example.com/monolith?ref=hackernews",
        None,
        "dhh_fan",
    ),
    ("Tell HN: Our side project hit 10k users", None, None, "indiehacker"),
    (
        "Show HN: An open-source flight controller for drone swarms",
        "https://github.com/example/swarm",
        None,
        "quadcopter",
    ),
    (
        "Battery chemistry explained for software engineers",
        "https://chem.example.net/battery-basics",
        None,
        "electrochem",
    ),
    (
        "Ask HN: Is a drone with a solid-state battery worth it?",
        None,
        "<p>Flight times look <b>twice</b> as long on paper.</p>",
        "rc_pilot",
    ),
    ("AT&T outage post-mortem: what went wrong", "https://netops.example.com/pm", None, "netops"),
    ("Covid-19 contact tracing apps, five years later", "https://epi.example.org/ct", None, "epi"),
    ("Show HN: An e-ink dashboard for my home", "https://eink.example.dev/", None, "tinkerer"),
]


# More Hacker News stories, composed from parts so the feed has a realistic length.
HN_SUBJECTS = [
    "a Postgres extension",
    "a WebAssembly runtime",
    "a static site generator",
    "a key-value store",
    "an HTTP/3 proxy",
    "a terminal emulator",
    "a CRDT library",
    "a container scheduler",
    "a vector database",
    "a Lisp compiler",
]
HN_FORMS = [
    "Show HN: I built {}",
    "Lessons from running {} in production",
    "Why {} is harder than it looks",
]
HN_STORIES += [
    (form.format(subject), f"https://dev{i}.example.org/posts/{i}", None, f"hacker{i}")
    for i, (form, subject) in enumerate(
        (form, subject) for subject in HN_SUBJECTS for form in HN_FORMS
    )
]


# Events several providers report, each outlet in its own words: the stories newsagg groups
# (an article joins a story when its title shares significant words with it). Each is told
# by The Guardian, NewsAPI relays of two other outlets and, but for the takeover, a Hacker
# News link, within a couple of hours of each other: minutes ago, then the Guardian story,
# the NewsAPI ones and the HN one (or None) in the shapes of the tables above. Each pair
# of an event's headlines shares three or more proper names and key nouns; different
# events, and these and the stories above, share at most one. Each event has a NewsAPI
# relay in business, the category the harvester's first NewsAPI turn takes, so with the
# Guardian and HN ones (harvested whole at once) it is a story of three in the first
# minute of `make run`. None of their words is one the tests search for.
EVENTS: list[
    tuple[
        int,
        tuple[str, str, str | None, str | None],
        list[tuple[str, str, str, str | None]],
        tuple[str, str | None, str | None, str] | None,
    ]
] = [
    (
        64,
        (
            "technology",
            "Lumora satellite broadband reaches remote Arctic villages",
            "<p>Forty settlements in Greenland and Svalbard get 100Mbps links.</p>",
            "Alex Hern",
        ),
        [
            (
                "business",
                "Reuters",
                "Arctic villages get Lumora satellite broadband",
                "The operator signed up 3,000 households in its first month.",
            ),
            (
                "technology",
                "Ars Technica",
                "Lumora switches on low orbit satellite broadband across the Arctic",
                "Latency under 40 ms above the 70th parallel.",
            ),
        ],
        (
            "Lumora satellite broadband in the Arctic: latency measurements",
            "https://latency.example.net/lumora-arctic",
            None,
            "packetloss",
        ),
    ),
    (
        151,
        (
            "business",
            "Brightwater Freight agrees £4bn takeover of Calloway Rail",
            "Shareholders of both firms approve the deal &ndash; regulators next.",
            "Jasper Jolly",
        ),
        [
            (
                "business",
                "Bloomberg",
                "Calloway Rail accepts £4bn takeover bid from Brightwater Freight",
                "The offer is 31 percent above last week's share price.",
            ),
            (
                "business",
                "BBC News",
                "Brightwater Freight to buy Calloway Rail in £4bn deal",
                None,
            ),
        ],
        None,
    ),
    (
        238,
        (
            "science",
            "Meridian Aerospace lander touches down near lunar south pole",
            "<p>The craft will spend a fortnight looking for <em>ice</em>.</p>",
            "Nicola Davis",
        ),
        [
            (
                "business",
                "Reuters",
                "Meridian Aerospace shares jump after lunar lander touches down",
                "Investors cheer the private mission's success.",
            ),
            (
                "science",
                "New Scientist",
                "Lunar south pole landing marks milestone for Meridian Aerospace",
                "Its instruments will look for ice in shadowed craters.",
            ),
        ],
        (
            "Meridian Aerospace lunar lander telemetry from the south pole",
            "https://moonwatch.example.org/meridian-telemetry",
            None,
            "orbiter",
        ),
    ),
    (
        322,
        (
            "technology",
            "Corvane recalls smart thermostats after overheating reports",
            "<p>Owners are told to switch units off at the wall.</p>",
            "Dan Milmo",
        ),
        [
            (
                "technology",
                "The Verge",
                "Corvane smart thermostat recall covers 200,000 homes",
                "Refunds or replacements are offered.",
            ),
            (
                "business",
                "CNBC",
                "Corvane stock slides on smart thermostat overheating recall",
                "Analysts expect a charge of $90 million.",
            ),
        ],
        (
            "Corvane smart thermostats overheating: a teardown of the faulty relay",
            "https://teardown.example.com/corvane-relay",
            None,
            "solderjoint",
        ),
    ),
]


# The vocabulary the ticker composes new stories from: (category, subject, action, object).
CATEGORIES = ("business", "entertainment", "general", "health", "science", "sports", "technology")
TICKER_SUBJECTS = ["City council", "Researchers", "A startup", "Regulators", "Engineers"]
TICKER_ACTIONS = ["unveils", "tests", "approves", "delays", "funds"]
TICKER_OBJECTS = {
    "business": ["a drone delivery venture", "a battery gigafactory"],
    "entertainment": ["a festival of drone light shows", "a studio expansion"],
    "general": ["new cycle lanes", "a flood barrier"],
    "health": ["a vaccine study", "battery-powered hearing aids"],
    "science": ["a solid-state battery", "a polar survey drone"],
    "sports": ["a stadium upgrade", "a drone camera ban"],
    "technology": ["an open-source compiler", "a longer-lasting phone battery"],
}
# The category of each Guardian section, as PRODUCT.md documents the mapping; any other
# section is general news. NewsAPI files the Guardian stories it relays under it. Written
# here, not imported from providers.guardian: the simulator stands for the upstreams, so it
# stays an independent check of the client it serves.
SECTION_CATEGORIES = {
    "technology": "technology",
    "business": "business",
    "money": "business",
    "science": "science",
    "environment": "science",
    "sport": "sports",
    "football": "sports",
    "culture": "entertainment",
    "film": "entertainment",
    "music": "entertainment",
    "tv-and-radio": "entertainment",
    "books": "entertainment",
    "stage": "entertainment",
    "artanddesign": "entertainment",
    "games": "entertainment",
    "society": "health",
}


def section_category(section: str) -> str:
    """The category of a Guardian section (general news when the table has none)."""
    return SECTION_CATEGORIES.get(section, "general")


# A Guardian section for each category (one of those SECTION_CATEGORIES maps to it).
SECTIONS = {
    "business": "business",
    "entertainment": "culture",
    "general": "world",
    "health": "society",
    "science": "science",
    "sports": "sport",
    "technology": "technology",
}


def invented_story(rng: random.Random) -> dict[str, str]:
    """A plausible new story: title, description and category, from the vocabulary above."""
    category = rng.choice(CATEGORIES)
    subject, action = rng.choice(TICKER_SUBJECTS), rng.choice(TICKER_ACTIONS)
    thing = rng.choice(TICKER_OBJECTS[category])
    return {
        "title": f"{subject} {action} {thing}",
        "description": f"Latest: {subject.lower()} {action} {thing}.",
        "category": category,
    }


# The sentences invented bodies are made of, around each story's own title and trail text.
# Their words are in no title or trail text of this data set and in no query the tests
# ask, so searching bodies (as the real Guardian does) finds what the title and trail
# already find, plus what only a body holds: the story's place, one of BODY_PLACES.
BODY_SENTENCES = [
    "Our correspondent in {place} spoke to residents, officials and campaigners recently.",
    "Data released on Tuesday suggest that change is already happening.",
    "Critics say progress has been slow and uneven between regions.",
    "Supporters argue that patience is needed while findings come in.",
    "Ministers are expected to respond once MPs reconvene following recess.",
    "Councillors said they welcomed scrutiny but wanted clearer guidance.",
    "Several experts cautioned that preliminary numbers should be treated carefully.",
    "Readers can send their views using our comment form below.",
    "This piece will be updated as details emerge.",
    "Analysts at {place} University described it as overdue.",
    "Campaign groups have called for independent review of budgets.",
    "Residents in {place} told us they had noticed little difference so far.",
]
BODY_PLACES = [
    "Aberystwyth",
    "Dundee",
    "Norwich",
    "Truro",
    "Lerwick",
    "Inverness",
    "Carlisle",
    "Swansea",
    "Enniskillen",
    "Penzance",
    "Whitby",
    "Stornoway",
]
_TAG = re.compile(r"<[^>]*>")


def plain(text: str | None) -> str:
    """HTML as the text a reader sees: tags dropped, entities decoded."""
    return " ".join(html.unescape(_TAG.sub(" ", text or "")).split())


def body_place(number: int) -> str:
    """The place only the body of story `number` names (a word no title or trail holds)."""
    return BODY_PLACES[number % len(BODY_PLACES)]


def _filler(number: int) -> list[str]:
    """BODY_SENTENCES in an order of story `number`'s own, its place filled in."""
    sentences = [s.format(place=body_place(number)) for s in BODY_SENTENCES[1:]]
    random.Random(number).shuffle(sentences)
    return sentences


def body_text(title: str, trail: str | None, number: int) -> str:
    """An invented article body, the same every time for the same story: where it was
    reported from, its title, trail text and ten more of BODY_SENTENCES (120-odd words)."""
    where = BODY_SENTENCES[0].format(place=body_place(number))
    filler = _filler(number)
    middle = [plain(title).rstrip(".") + ".", *filler[:4], *([plain(trail)] if trail else [])]
    return " ".join([where, *middle, *filler[4:10]])


def newsapi_content(lead: str, number: int, body: str | None = None) -> str:
    """NewsAPI's `content`: an article's first 200 characters, then how many it cut. The
    article is `body` when given, else its lead followed by invented sentences."""
    if body is None:
        body = " ".join([plain(lead), *_filler(number)])
    cut = body[:200]
    return cut if len(body) <= 200 else f"{cut}… [+{len(body) - 200} chars]"


def _iso(moment: datetime, style: str = "Z") -> str:
    if style == "ms":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if style == "offset":
        return moment.isoformat(timespec="seconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower().replace("&#8217;", ""))
    return "-".join(part for part in keep.split("-") if part)[:60]


def _ago(now: datetime, minutes: int) -> datetime:
    return (now - timedelta(minutes=minutes)).replace(microsecond=0)


def guardian_results(now: datetime) -> list[dict[str, Any]]:
    results = []
    stories = [(story, 23 + i * 53) for i, story in enumerate(GUARDIAN_STORIES)]
    stories += [(story, minutes) for minutes, story, _, _ in EVENTS]
    for i, ((section, title, trail, byline), minutes) in enumerate(stories):
        published = _ago(now, minutes)
        path = f"{section}/{published:%Y/%b/%d}/{_slug(title)}".lower()
        item: dict[str, Any] = {
            "id": path,
            "type": "article",
            "sectionId": section,
            "sectionName": section.replace("-", " ").title(),
            "webPublicationDate": _iso(published, "offset" if i % 7 == 6 else "Z"),
            "webTitle": title,
            "webUrl": f"https://www.theguardian.com/{path}",
            "apiUrl": f"https://content.guardianapis.com/{path}",
            "isHosted": False,
            "pillarName": "News",
        }
        if i % 5 != 4:  # every fifth item comes without `fields` at all
            fields: dict[str, Any] = {"wordcount": str(400 + 37 * i), "isPremoderated": "false"}
            if trail is not None:
                fields["trailText"] = trail
            if byline is not None:
                fields["byline"] = byline
            fields["bodyText"] = body_text(title, trail, i)
            if i % 3 == 0:
                fields["thumbnail"] = f"https://media.guim.example/{i}/500.jpg"
            item["fields"] = fields
        results.append(item)
    return results


def newsapi_articles(now: datetime) -> list[dict[str, Any]]:
    articles = []
    stories = [(story, 11 + i * 61) for i, story in enumerate(NEWSAPI_STORIES)]
    stories += [  # an event's relays come out after the Guardian's story, 17 minutes apart
        (story, minutes - 17 * (j + 1))
        for minutes, _, relays, _ in EVENTS
        for j, story in enumerate(relays)
    ]
    for i, ((category, publisher, title, description), minutes) in enumerate(stories):
        published = _ago(now, minutes)
        host = _slug(publisher).replace("-", "")
        articles.append(
            {
                "source": {"id": _slug(publisher), "name": publisher},
                "author": f"Staff at {publisher}" if i % 2 else None,
                "title": f"{title} - {publisher}",
                "description": description,
                "url": f"https://www.{host}.example/{published:%Y/%m}/{_slug(title)}",
                "urlToImage": f"https://img.example/{i}.jpg" if i % 3 else None,
                "publishedAt": _iso(published, "offset" if i % 4 == 0 else "Z"),
                "content": newsapi_content(description or title, i),
                "category": category,
            }
        )
    # Relays of Guardian stories, with the URL variants that canonicalisation removes.
    variants = ["?utm_source=newsapi&CMP=share_btn_tw", "/", "#comments"]
    for i, story in enumerate(guardian_results(now)[:6]):
        url = story["webUrl"] + variants[i % 3]
        if i % 2:
            url = url.replace("https://www.", "http://WWW.")
        articles.append(
            {
                "source": {"id": "the-guardian-uk", "name": "The Guardian"},
                "author": None,
                "title": story["webTitle"].replace("&#8217;", "'") + " - The Guardian",
                "description": "Relayed story.",
                "url": url,
                "urlToImage": None,
                "publishedAt": story["webPublicationDate"],
                "content": None,
                "category": section_category(story["sectionId"]),
            }
        )
    # A google-news redirect item, and NewsAPI's removed placeholders.
    articles.append(
        {
            "source": {"id": "google-news", "name": "Google News"},
            "author": None,
            "title": "City council approves new cycle lanes - Google News",
            "description": None,
            "url": "https://news.google.com/rss/articles/CBMiK2h0dHBzOi8vZXhhbXBsZS5jb20vY3ljbGUtbGFuZXPSAQA",
            "urlToImage": None,
            "publishedAt": _iso(_ago(now, 95)),
            "content": None,
            "category": "general",
        }
    )
    removed = {
        "source": {"id": None, "name": "[Removed]"},
        "author": None,
        "title": "[Removed]",
        "description": "[Removed]",
        "url": "https://removed.com",
        "urlToImage": None,
        "publishedAt": "1970-01-01T00:00:00Z",
        "content": "[Removed]",
    }
    articles.insert(3, {**removed, "category": "technology"})
    articles.insert(9, {**removed, "category": "general"})
    return articles


def hackernews_hits(now: datetime) -> list[dict[str, Any]]:
    hits = []
    links = [
        story["webUrl"] + "?utm_medium=social&fbclid=abc" for story in guardian_results(now)[:2]
    ]
    links += [a["url"] + "?ref=hn" for a in newsapi_articles(now)[:2]]
    stories = list(HN_STORIES) + [
        (
            f"Discussion: {url.rsplit('/', 1)[-1].split('?')[0].replace('-', ' ')}",
            url,
            None,
            "linker",
        )
        for url in links
    ]
    timed = [(story, 7 + i * 41) for i, story in enumerate(stories)]
    # After the rest, so theirs keep their objectIDs: an event's link, 9 minutes after its
    # Guardian story.
    timed += [(story, minutes - 9) for minutes, _, _, story in EVENTS if story is not None]
    for i, ((title, url, text, author), minutes) in enumerate(timed):
        created = _ago(now, minutes)
        object_id = str(41_000_000 + i)
        hits.append(
            {
                "objectID": object_id,
                "title": title,
                "url": url,
                "author": author,
                "points": 10 + 13 * i,
                "num_comments": 3 * i,
                "story_text": text,
                "created_at": _iso(created, "ms"),
                "created_at_i": int(created.timestamp()),
                "_tags": ["story", f"author_{author}", f"story_{object_id}"]
                + (["ask_hn"] if title.startswith("Ask HN") else []),
            }
        )
        hits.append(  # a comment on it: only filtered out by tags=story
            {
                "objectID": str(42_000_000 + i),
                "title": None,
                "url": None,
                "author": "commenter",
                "points": None,
                "num_comments": None,
                "story_text": None,
                "comment_text": "<p>Great write-up!</p>",
                "created_at": _iso(created + timedelta(minutes=3), "ms"),
                "created_at_i": int((created + timedelta(minutes=3)).timestamp()),
                "_tags": ["comment", "author_commenter", f"story_{object_id}"],
            }
        )
    return hits


def newsapi_story(
    title: str,
    description: str | None,
    category: str,
    published: datetime,
    number: int,
    body: str | None = None,
) -> dict[str, Any]:
    """A newly published NewsAPI article (with the `category` the server filters on);
    `body` is its text, cut to `content` as NewsAPI does (default: invented)."""
    publisher = "Newswire"
    return {
        "source": {"id": "newswire", "name": publisher},
        "author": None,
        "title": f"{title} - {publisher}",
        "description": description,
        "url": f"https://www.newswire.example/{published:%Y/%m}/{_slug(title)}-{number}",
        "urlToImage": None,
        "publishedAt": _iso(published),
        "content": newsapi_content(description or title, number, body),
        "category": category,
    }


def guardian_story(
    title: str,
    trail: str | None,
    section: str,
    published: datetime,
    number: int,
    body: str | None = None,
) -> dict[str, Any]:
    """A newly published Guardian result, with all its fields; `body` is its `bodyText`
    (default: invented)."""
    path = f"{section}/{published:%Y/%b/%d}/{_slug(title)}-{number}".lower()
    fields = {"wordcount": "600", "isPremoderated": "false"}
    if trail is not None:
        fields["trailText"] = f"<p>{trail}</p>"
    fields["bodyText"] = body if body is not None else body_text(title, trail, number)
    return {
        "id": path,
        "type": "article",
        "sectionId": section,
        "sectionName": section.replace("-", " ").title(),
        "webPublicationDate": _iso(published),
        "webTitle": title,
        "webUrl": f"https://www.theguardian.com/{path}",
        "apiUrl": f"https://content.guardianapis.com/{path}",
        "isHosted": False,
        "pillarName": "News",
        "fields": fields,
    }


def hackernews_story(
    title: str, text: str | None, published: datetime, number: int
) -> dict[str, Any]:
    """A newly published Hacker News story: a text post when there is text, else a link."""
    object_id = str(43_000_000 + number)
    return {
        "objectID": object_id,
        "title": title,
        "url": None if text else f"https://news.example.org/{_slug(title)}-{number}",
        "author": "newcomer",
        "points": 1,
        "num_comments": 0,
        "story_text": None if text is None else f"<p>{text}</p>",
        "created_at": _iso(published, "ms"),
        "created_at_i": int(published.timestamp()),
        "_tags": ["story", "author_newcomer", f"story_{object_id}"],
    }


def now_utc() -> datetime:
    """The data's "now", to the whole minute: two requests a moment apart (a cache refill,
    a retry) then see identical timestamps, as they would from a real upstream."""
    return datetime.now(UTC).replace(second=0, microsecond=0)
