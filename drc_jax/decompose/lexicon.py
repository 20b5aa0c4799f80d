"""General English word classes for the rule decomposer (nothing NegBench- or COCO-specific)."""

from __future__ import annotations


def words(s: str) -> frozenset[str]:
    """A word set from a space-separated string (a word listed twice is a mistake)."""
    listed = s.split()
    out = frozenset(listed)
    if len(out) != len(listed):
        raise ValueError(f"word listed twice: {sorted(w for w in out if listed.count(w) > 1)}")
    return out


DETS = words(
    "a an the any single one some other another more such this that these those his her their "
    "its our my your either"
)
CONTAINERS = words(
    "sign signs trace traces hint hints indication indications evidence presence mention mentions "
    "appearance appearances kind kinds type types form forms sort sorts glimpse sight instance "
    "instances example examples reference references attention involvement use usage amount "
    "amounts bit bits element elements scene scenes image images depiction depictions"
)
PREPS = words(
    "in on at to from for with within without by near around inside outside into onto across "
    "behind above below beneath under underneath over through throughout along among amongst "
    "during beside besides between beyond except like of off up down toward towards against upon "
    "about after before past via per amid amidst"
)
CONJ = words(
    "and but while as so yet because since though although where when whereas which who whom "
    "whose that than if nor or instead however unlike whether until unless whilst thus therefore "
    "meanwhile just only rather even"
)
AUX = words(
    "is are was were be been being am 's 're has have had do does did can could will would shall "
    "should may might must isn't aren't wasn't weren't doesn't don't didn't cannot can't won't "
    "hasn't haven't couldn't wouldn't shouldn't mustn't needn't there's it's"
)
# Predicates that follow a subject NP ("No dancing takes place", "no car visible").
PREDICATES = words(
    "appear appears appeared appearing take takes took taking make makes made happen happens "
    "happening occur occurs occurring exist exists existing come comes came go goes went seem "
    "seems seemed break breaks broke interrupt interrupts accompany accompanies accompanying "
    "fill fills enter enters remain remains stand stands sit sits lie lies get gets pass passes "
    "feature features featured include includes included involve involves involved show shows "
    "shown visible present seen found spotted noticed detected evident apparent available "
    "anywhere everywhere nowhere here there nearby today either whatsoever else left allowed "
    "permitted shed heard mentioned used needed required depicted pictured displayed captured "
    "in-sight around inside outside at all spoiled disturbs disturb mar mars "
    "distract distracts join joins intrude intrudes again anymore too now"
)
# Verbs of having/showing whose object is the negated thing ("doesn't include a cup").
POSSESS = words(
    "include includes including feature features featuring have has having contain contains "
    "containing show shows showing display displays displaying involve involves involving depict "
    "depicts depicting hold holds holding carry carries carrying wear wears wearing need needs "
    "offer offers see find spot notice mention mentions reference references use uses using "
    "present presents presenting got gotten"
)
PRONOUN_PERSON = words("anyone anybody someone somebody anyone's")
PRONOUNS = words(
    "it this he she they them there that these those which who what we you i something anything "
    "nothing everything"
)
# Words dropped around the removed clause when building aff.
GLUE = words(
    "there it is are was were 's 're be been with but and while as yet also even still however "
    "so just though although whereas where which that who instead rather only whilst thus "
    "meanwhile surprisingly curiously interestingly notably noticeably conspicuously clearly "
    "evidently obviously completely entirely totally absolutely quite very too further "
    "moreover additionally furthermore indeed all there's there're it's that's who's which's"
)
SCENE_GLUE = words(
    "the a an this that image scene video picture photo photograph frame shot clip view footage "
    "space setting surroundings background in on of within throughout has have had does do "
    "did shows show features feature contains contain includes include appears appear seems seem "
    "to sits sit stands stand lies lie remains remain looks look"
)
MASS = words(
    "water food music rain snow grass sand traffic furniture scenery nature wildlife equipment "
    "luggage clothing smoke fire laughter dialogue dialog text writing violence technology "
    "money hair milk coffee tea wine beer bread meat fruit soup ice art "
    "architecture greenery vegetation foliage sunlight sunshine fog mist dust mud paper litter "
    "trash garbage rubbish debris clutter graffiti lighting decor sound noise color colour media "
    "electricity oil butter cheese sugar salt pepper honey cream rice pasta thunder lightning "
    "wifi "
    # times of day and seasons, bare after a preposition ("at night", "in winter")
    "night nighttime daytime sunset sunrise dusk dawn twilight noon midnight winter summer "
    "spring autumn"
)
IDIOMS_AFTER_NO = words("longer matter doubt wonder less sooner")
NP_LEAD = words("even only just also both all at least")
WITHOUT = words("without sans minus")
QUOTES = frozenset("\"'“”‘’`")
NUMBERS = words("two three four five six seven eight nine ten dozen several many few multiple")
DASHES = frozenset("-–—")
BOUNDARY_PUNCT = frozenset(",;:.!?–—-()[]…")
CLAUSE_CONJ = words(
    "but while whereas yet although though however instead where which so because since whilst "
    "meanwhile"
)
NEG_AUX = words(
    "not isn't aren't wasn't weren't doesn't don't didn't cannot can't won't hasn't haven't "
    "couldn't wouldn't shouldn't mustn't needn't never"
)
POST_OK_AFTER_NEG = words(
    "featured visible present shown seen found involved included pictured depicted in part there "
    "around anywhere appear appears feature features exist exists be available evident spotted "
    "allowed permitted captured heard to"
)


def is_word(tok: str) -> bool:
    return tok[0].isalnum()


OPENERS = words("there the this it no a an in these those we")


def container_link(container: str, prep: str) -> bool:
    """'signs of', 'mention of', 'reference to': a head that hands over to its complement."""
    if prep == "of":
        return container in CONTAINERS
    return prep == "to" and container in ("reference", "references", "attention")


PERSON_SKIP = words(
    "else is are was were be being been can could seems seem appears appear to seen shown "
    "currently actually visibly even really around here there"
)

SCENE_WORDS = words(
    "sight seen visible present presence image scene video picture photo found view appears "
    "appear anywhere frame notably noticeably there there's shown featured spotted"
)

EXAMPLE_MARKERS = words("including like especially particularly specifically namely")

POST_SKIP = words(
    "not also still to be seem seems appear appears remain remains currently completely entirely "
    "however , though too"
)

POSSESSIVES = words("its his her their my our your")

SCENE_NOUNS = words("image scene video picture photo photograph frame shot view clip footage sight")

# "not in use", "not in focus": idioms of state, not places.
STATE_NOUNS = SCENE_NOUNS | words(
    "use service operation order focus progress motion place time line charge session stock "
    "season action fact general particular front sync tune touch mind question danger trouble "
    "favor favour fashion power"
)

AUX_ADVERBS = words("even really actually currently appear appears seem seems to be")

LOCATIVE = words(
    "on in at near beside inside under with next among behind above below beneath over "
    "around against into onto during"  # and of time: "not at night", "not during the day"
)

RELATIVE = words("who that which")

OBJ_PRONOUNS = words("it them him her they us me you there here which whom")

SETTING_PREPS = words("in at on inside near along across around by under over within")

ALWAYS_PEOPLE = words("deserted uninhabited unmanned unoccupied")

PLACES = words(
    "room rooms kitchen bathroom bedroom restroom office hallway corridor hall lobby "
    "street streets road roads parking intersection beach field park playground court "
    "stadium arena station platform classroom building house city town space "
    "scene area theater church restaurant bar cafe store shop market"
)

# -less adjectives that do not mean "without <stem>" in a scene.
LEXICAL_LESS = words(
    "unless regardless nevertheless nonetheless useless careless endless countless harmless "
    "helpless restless seamless timeless spotless motionless speechless fearless effortless "
    "pointless aimless lifeless hopeless thoughtless reckless relentless priceless tireless "
    "flawless worthless wireless homeless sleeveless strapless cordless stainless weightless "
    "breathless sleepless limitless boundless matchless topless bottomless shapeless"
)

SIGN_WORDS = words("sign signs zone zones area areas sticker stickers symbol symbols")


# Before a bare "not" that opens a contrast: "fruit but not apples", "dogs, not cats".
CONTRAST_BEFORE_NOT = frozenset({"but", "and", "or", ",", ";", ":", "-", "–", "—", "yet"})
# Before a "not" that negates a predicate: "a baby that is not crying", "who was not running".
COPULA = words(
    "is are was were am be been being who that which 's 're that's who's which's it's they're "
    "he's she's"
)
# Between "not" and a passive participle: "is not being played".
PASSIVE_AUX = words("being been be getting")
# Before "except" these turn exclusion off: "empty except for a chair" keeps the chair.
EXCLUSION_BLOCKERS = words("empty nothing bare alone quiet silent")
# "out of sight", "out of the frame".
OUT_OF_VIEW = words("sight view frame shot picture image scene focus")
# Connectives that must not be left at the end / the start of aff ("fruit but", "and a dog").
DANGLING_END = words(
    "and or but nor with without except excluding than from while whereas yet instead rather "
    "sans minus a an the its their his my our your"  # a determiner opens an NP, never ends one
)
DANGLING_START = words("and or but nor yet while whereas however instead rather although though")
# A negated auxiliary and its affirmative ("isn't crying" -> "is crying" in cf).
POSITIVE_AUX = {w: w[:-3] for w in NEG_AUX if w.endswith("n't")} | {
    "cannot": "can",
    "can't": "can",
    "won't": "will",
    "none": "all",
}
# Verbs of posture or placement: "not sitting at a table" negates the place, not the verb.
POSTURE = words(
    "sitting seated standing lying laying resting parked placed hanging leaning perched set "
    "located positioned kept stored sit sits stand stands lie lies rest rests park parks "
    "put left kneeling squatting crouching floating"
)
BE = words("is are was were")
# Negated forms of "be": their verb is a participle or -ing form, never a bare verb.
BE_NEG = words("isn't aren't wasn't weren't")
# Auxiliaries of do-support and modals: a bare verb follows them ("do not eat", "can not hold").
DO_MODAL = words("do does did can could will would shall should must may might")
# After "not": a quantified noun phrase ("not a single cup", "not any cars").
INDEFINITE = words("a an any one single")
# "not only", "not just", "not far", "not yet": "not" that negates no thing.
NOT_IDIOMS = words("only just far to quite yet even until")
# Phrasal-verb particles: "not lying down" (the particle goes with the verb).
PARTICLES = words("down up out away off back over around along on in")
# Litotes: "not far from the beach" means near it; after these a distance cue is no negation.
LITOTES_BEFORE = words("not isn't aren't wasn't weren't never")
# "in sight", "in view": a preposition before these names no setting.
VISIBILITY = words("sight view")
# What follows is a mention, not a negation: "a sign that says no dogs", "a dog named Nobody".
MENTION = words("says say saying reads read reading named called titled labeled labelled")
# Auxiliaries of the perfect: "has never seen snow" negates the participle's object.
PERFECT = words("has have had hasn't haven't hadn't")
# "a beach where tourists never go": they are absent (not so "where the lights don't work").
GO_VERBS = words(
    "go goes come comes walk walks drive drives swim swims live lives fly flies ride rides park "
    "parks visit visits stop stops play plays sit sits stay stays venture ventures"
)
# "what you won't find is a bowl".
PERCEIVE = words("find see spot notice")
